//! Templates that cannot fit, as reported against the service: each built the way
//! the report describes (what the engine does with it is in the comments).

/// Five `{% set cN = "x" * 100000000 %}` (151 bytes): the engine folds each into a
/// 100 MB constant while it compiles, 500 MB before any event.
pub fn constant_fold() -> String {
    let sets: String = (0..5)
        .map(|i| format!("{{% set c{i} = \"x\" * 100000000 %}}"))
        .collect();
    sets + "1"
}

/// Fourteen 100,000,016-byte concatenations, also folded while compiling: the one
/// that aborted the whole process ("memory allocation of 100000016 bytes failed").
pub fn process_killer() -> String {
    let sets: String = (0..14)
        .map(|i| format!("{{% set k{i:02} = (\"x\" * 100000000) ~ \"0123456789abcdef\" %}}"))
        .collect();
    sets + "1"
}

/// A 1 MB string doubled by `~` ten times at render: a gigabyte in a few steps of
/// fuel.
pub fn doubling() -> String {
    let mut source = "{% set d0 = \"x\" * 1000000 %}".to_owned();
    for i in 1..=10 {
        source += &format!("{{% set d{i} = d{p} ~ d{p} %}}", p = i - 1);
    }
    source + "{{ d10 | length }}"
}

/// A loop well within the fuel whose every step builds a fresh 10 MB string:
/// minutes per event.
pub fn endless() -> String {
    "{% for i in range(13000) %}{% set s = \"x\" * (10000000 + i) %}{% endfor %}1".to_owned()
}

/// An ordinary template, for the subscriptions that must not be held up.
pub const GOOD: &str = "{\"id\": {{ id }}, \"topic\": {{ topic }}}";
