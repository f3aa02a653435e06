//! No import cycles between the crate's source files: a file may use another only if
//! that one does not, directly or through others, use it back.
//!
//! Each crate (the library at src/lib.rs, the binaries at src/main.rs and src/bin/)
//! is parsed from its root through its `mod` declarations. A file's references are
//! the paths it names that start with `crate::`, `super::` or `self::`, with a child
//! module, or with a module a `use` of its module brought in; in code, in `use` trees,
//! and in the tokens of macro calls and attributes (handler lists, log fields). Each
//! goes to the file of its longest module prefix, so `crate::api::AppState` is a
//! reference to the file of `crate::api` even when that only re-exports it. Declaring
//! a child (`mod x;`) is no reference. Code under `#[cfg(test)]` may use anything.

use std::{
    collections::{BTreeMap, BTreeSet, HashMap},
    fmt::Write as _,
    path::{Path, PathBuf},
};

use syn::{
    buffer::{Cursor, TokenBuffer},
    punctuated::Punctuated,
    visit::{self, Visit},
    Attribute, Item, Meta, Token, UseTree,
};

/// A module's path below the crate root (`[]` is the root).
type ModPath = Vec<String>;

/// One crate: where each module is written, and the parsed files.
struct Crate {
    /// Inline modules map to the file that holds them.
    modules: BTreeMap<ModPath, PathBuf>,
    /// Every file with the module it is.
    files: Vec<(PathBuf, ModPath, syn::File)>,
}

/// Reads a source file; `None` when it does not exist.
type Read<'a> = &'a dyn Fn(&Path) -> Option<String>;

fn load(root: &Path, read: Read) -> Result<Crate, String> {
    let mut krate = Crate {
        modules: BTreeMap::new(),
        files: Vec::new(),
    };
    let text = read(root).ok_or_else(|| format!("{} is missing", root.display()))?;
    let dir = root.parent().unwrap_or(Path::new("")).to_owned();
    krate.modules.insert(Vec::new(), root.to_owned());
    load_file(&mut krate, root, &text, Vec::new(), &dir, read)?;
    Ok(krate)
}

/// Parse a file that is module `module`, whose child modules live in `dir`.
fn load_file(
    krate: &mut Crate,
    file: &Path,
    text: &str,
    module: ModPath,
    dir: &Path,
    read: Read,
) -> Result<(), String> {
    let parsed = syn::parse_file(text).map_err(|e| format!("{}: {e}", file.display()))?;
    load_items(krate, file, &parsed.items, &module, dir, read)?;
    krate.files.push((file.to_owned(), module, parsed));
    Ok(())
}

fn load_items(
    krate: &mut Crate,
    file: &Path,
    items: &[Item],
    module: &ModPath,
    dir: &Path,
    read: Read,
) -> Result<(), String> {
    for item in items {
        let Item::Mod(m) = item else { continue };
        if test_only(&m.attrs) {
            continue;
        }
        let name = m.ident.to_string();
        if let Some(relative) = path_attribute(&m.attrs) {
            // `#[path]` is relative to the directory of the declaring file.
            let path = file.parent().unwrap_or(Path::new("")).join(relative);
            let text = read(&path).ok_or_else(|| {
                format!(
                    "{}: no file {} for `mod {name}`",
                    file.display(),
                    path.display()
                )
            })?;
            let mut child = module.clone();
            child.push(name);
            let child_dir = path.parent().unwrap_or(Path::new("")).to_owned();
            krate.modules.insert(child.clone(), path.clone());
            load_file(krate, &path, &text, child, &child_dir, read)?;
            continue;
        }
        let mut child = module.clone();
        child.push(name.clone());
        let child_dir = dir.join(&name);
        match &m.content {
            Some((_, inline)) => {
                krate.modules.insert(child.clone(), file.to_owned());
                load_items(krate, file, inline, &child, &child_dir, read)?;
            }
            None => {
                let flat = dir.join(format!("{name}.rs"));
                let nested = child_dir.join("mod.rs");
                let (path, text) = match (read(&flat), read(&nested)) {
                    (Some(t), None) => (flat, t),
                    (None, Some(t)) => (nested, t),
                    (Some(_), Some(_)) => {
                        return Err(format!(
                            "both {} and {} exist",
                            flat.display(),
                            nested.display()
                        ))
                    }
                    (None, None) => {
                        return Err(format!("{}: no file for `mod {name}`", file.display()))
                    }
                };
                krate.modules.insert(child.clone(), path.clone());
                load_file(krate, &path, &text, child, &child_dir, read)?;
            }
        }
    }
    Ok(())
}

/// The file a `#[path = "…"]` attribute names.
fn path_attribute(attrs: &[Attribute]) -> Option<String> {
    attrs.iter().find_map(|a| match &a.meta {
        Meta::NameValue(nv) if nv.path.is_ident("path") => match &nv.value {
            syn::Expr::Lit(syn::ExprLit {
                lit: syn::Lit::Str(s),
                ..
            }) => Some(s.value()),
            _ => None,
        },
        _ => None,
    })
}

/// `#[cfg(test)]`, or a `cfg(all(..))` that requires it.
fn test_only(attrs: &[Attribute]) -> bool {
    fn requires_test(meta: &Meta) -> bool {
        match meta {
            Meta::Path(p) => p.is_ident("test"),
            Meta::List(l) if l.path.is_ident("all") => l
                .parse_args_with(Punctuated::<Meta, Token![,]>::parse_terminated)
                .is_ok_and(|all| all.iter().any(requires_test)),
            _ => false,
        }
    }
    attrs.iter().any(|a| {
        a.path().is_ident("cfg") && a.parse_args::<Meta>().is_ok_and(|m| requires_test(&m))
    })
}

fn item_attrs(item: &Item) -> &[Attribute] {
    match item {
        Item::Const(i) => &i.attrs,
        Item::Enum(i) => &i.attrs,
        Item::ExternCrate(i) => &i.attrs,
        Item::Fn(i) => &i.attrs,
        Item::ForeignMod(i) => &i.attrs,
        Item::Impl(i) => &i.attrs,
        Item::Macro(i) => &i.attrs,
        Item::Mod(i) => &i.attrs,
        Item::Static(i) => &i.attrs,
        Item::Struct(i) => &i.attrs,
        Item::Trait(i) => &i.attrs,
        Item::TraitAlias(i) => &i.attrs,
        Item::Type(i) => &i.attrs,
        Item::Union(i) => &i.attrs,
        Item::Use(i) => &i.attrs,
        _ => &[],
    }
}

/// Every path a `use` tree names, each with the name it brings in (none for a glob).
fn use_paths(
    tree: &UseTree,
    prefix: &mut Vec<String>,
    out: &mut Vec<(Vec<String>, Option<String>)>,
) {
    match tree {
        UseTree::Path(p) => {
            prefix.push(p.ident.to_string());
            use_paths(&p.tree, prefix, out);
            prefix.pop();
        }
        UseTree::Name(n) if n.ident == "self" => {
            out.push((prefix.clone(), prefix.last().cloned()));
        }
        UseTree::Name(n) => {
            let mut path = prefix.clone();
            path.push(n.ident.to_string());
            out.push((path, Some(n.ident.to_string())));
        }
        UseTree::Rename(r) => {
            let mut path = prefix.clone();
            if r.ident != "self" {
                path.push(r.ident.to_string());
            }
            out.push((path, Some(r.rename.to_string())));
        }
        UseTree::Glob(_) => out.push((prefix.clone(), None)),
        UseTree::Group(g) => g.items.iter().for_each(|t| use_paths(t, prefix, out)),
    }
}

/// Whether the cursor is at `::`; the cursor after it.
fn colons(c: Cursor) -> Option<Cursor> {
    let (p, c) = c.punct()?;
    if p.as_char() != ':' {
        return None;
    }
    let (p, c) = c.punct()?;
    (p.as_char() == ':').then_some(c)
}

/// Every `a::b::c` (and lone identifier) in a token stream, groups included.
fn token_paths(mut c: Cursor, out: &mut Vec<Vec<String>>) {
    // Right after `::`, an identifier continues a path started elsewhere (or an
    // absolute one, which is never this crate).
    let mut after_colons = false;
    while !c.eof() {
        if let Some((inside, _, _, next)) = c.any_group() {
            token_paths(inside, out);
            (c, after_colons) = (next, false);
        } else if let Some((first, mut next)) = c.ident() {
            if !after_colons {
                let mut path = vec![first.to_string()];
                while let Some((segment, rest)) = colons(next).and_then(Cursor::ident) {
                    path.push(segment.to_string());
                    next = rest;
                }
                out.push(path);
            }
            (c, after_colons) = (next, false);
        } else if let Some(next) = colons(c) {
            (c, after_colons) = (next, true);
        } else if let Some((_, next)) = c.token_tree() {
            (c, after_colons) = (next, false);
        } else {
            break;
        }
    }
}

/// The file-to-file references of a crate, each with the paths that make it.
type Edges = BTreeMap<(PathBuf, PathBuf), BTreeSet<String>>;

struct Collector<'a> {
    krate: &'a Crate,
    file: &'a Path,
    /// The module the code being visited is in (inline modules included).
    module: ModPath,
    /// Per enclosing module, the modules its `use` items bring in, by name.
    imports: Vec<HashMap<String, ModPath>>,
    edges: &'a mut Edges,
}

impl Collector<'_> {
    /// The absolute path `path` names from the current module, if it is in this
    /// crate. A bare path (`x::y`, `x` a child module or an imported one) needs at
    /// least `bare_min_len` segments: in code a lone name is a local, or an import
    /// its `use` already counted.
    fn absolute(&self, path: &[String], bare_min_len: usize) -> Option<ModPath> {
        let (first, rest) = path.split_first()?;
        match first.as_str() {
            "crate" => Some(rest.to_vec()),
            "self" | "super" => {
                let mut base = self.module.clone();
                let mut rest = path;
                while let Some((head, tail)) = rest.split_first() {
                    match head.as_str() {
                        "self" => {}
                        "super" => {
                            base.pop()?;
                        }
                        _ => break,
                    }
                    rest = tail;
                }
                base.extend(rest.iter().cloned());
                Some(base)
            }
            _ if path.len() < bare_min_len => None,
            _ => {
                let mut child = self.module.clone();
                child.push(first.clone());
                if self.krate.modules.contains_key(&child) {
                    child.extend(rest.iter().cloned());
                    return Some(child);
                }
                let mut imported = self.imports.last()?.get(first)?.clone();
                imported.extend(rest.iter().cloned());
                Some(imported)
            }
        }
    }

    /// Record a reference from this file to the file of the longest module prefix.
    fn reference(&mut self, path: &[String], bare_min_len: usize) {
        let Some(absolute) = self.absolute(path, bare_min_len) else {
            return;
        };
        let target = (0..=absolute.len())
            .rev()
            .find_map(|n| self.krate.modules.get(&absolute[..n]));
        if let Some(target) = target {
            if target != self.file {
                self.edges
                    .entry((self.file.to_owned(), target.clone()))
                    .or_default()
                    .insert(path.join("::"));
            }
        }
    }

    fn tokens(&mut self, buffer: TokenBuffer) {
        let mut paths = Vec::new();
        token_paths(buffer.begin(), &mut paths);
        for path in paths {
            self.reference(&path, 2);
        }
    }

    /// Visit the items of a module, its `use` imports known first (they may come last).
    fn module_items(&mut self, items: &[Item]) {
        self.imports.push(HashMap::new());
        for item in items {
            let Item::Use(u) = item else { continue };
            if test_only(&u.attrs) {
                continue;
            }
            let mut paths = Vec::new();
            use_paths(&u.tree, &mut Vec::new(), &mut paths);
            for (path, name) in paths {
                // Only imported modules matter: `Item::f` adds nothing to the `use` of `Item`.
                let Some(absolute) = self.absolute(&path, 1) else {
                    continue;
                };
                if let (Some(name), true) = (name, self.krate.modules.contains_key(&absolute)) {
                    if let Some(imports) = self.imports.last_mut() {
                        imports.insert(name, absolute);
                    }
                }
            }
        }
        for item in items {
            self.visit_item(item);
        }
        self.imports.pop();
    }
}

impl<'ast> Visit<'ast> for Collector<'_> {
    fn visit_item(&mut self, item: &'ast Item) {
        if test_only(item_attrs(item)) {
            return;
        }
        match item {
            Item::Mod(m) => {
                if let Some((_, items)) = &m.content {
                    self.module.push(m.ident.to_string());
                    self.module_items(items);
                    self.module.pop();
                }
            }
            Item::Use(u) => {
                let mut paths = Vec::new();
                use_paths(&u.tree, &mut Vec::new(), &mut paths);
                for (path, _) in paths {
                    self.reference(&path, 1);
                }
            }
            _ => visit::visit_item(self, item),
        }
    }

    fn visit_impl_item(&mut self, item: &'ast syn::ImplItem) {
        let attrs = match item {
            syn::ImplItem::Const(i) => &i.attrs,
            syn::ImplItem::Fn(i) => &i.attrs,
            syn::ImplItem::Type(i) => &i.attrs,
            syn::ImplItem::Macro(i) => &i.attrs,
            _ => return visit::visit_impl_item(self, item),
        };
        if !test_only(attrs) {
            visit::visit_impl_item(self, item);
        }
    }

    fn visit_path(&mut self, path: &'ast syn::Path) {
        if path.leading_colon.is_none() {
            let segments: Vec<String> = path.segments.iter().map(|s| s.ident.to_string()).collect();
            self.reference(&segments, 2);
        }
        visit::visit_path(self, path);
    }

    /// `pub(super)` says who may see an item, not what it uses.
    fn visit_vis_restricted(&mut self, _: &'ast syn::VisRestricted) {}

    fn visit_macro(&mut self, mac: &'ast syn::Macro) {
        visit::visit_macro(self, mac);
        self.tokens(TokenBuffer::new2(mac.tokens.clone()));
    }

    fn visit_meta_list(&mut self, list: &'ast syn::MetaList) {
        visit::visit_meta_list(self, list);
        self.tokens(TokenBuffer::new2(list.tokens.clone()));
    }
}

/// The references between the files of a crate.
fn edges(krate: &Crate) -> Edges {
    let mut edges = Edges::new();
    for (file, module, parsed) in &krate.files {
        let mut collector = Collector {
            krate,
            file,
            module: module.clone(),
            imports: Vec::new(),
            edges: &mut edges,
        };
        collector.module_items(&parsed.items);
    }
    edges
}

/// The strongly connected components of more than one file (Tarjan).
fn cycles(edges: &Edges) -> Vec<Vec<PathBuf>> {
    struct Tarjan<'a> {
        next: BTreeMap<&'a Path, Vec<&'a Path>>,
        index: HashMap<&'a Path, usize>,
        low: HashMap<&'a Path, usize>,
        stack: Vec<&'a Path>,
        on_stack: BTreeSet<&'a Path>,
        found: Vec<Vec<PathBuf>>,
    }
    impl<'a> Tarjan<'a> {
        fn connect(&mut self, v: &'a Path) {
            let i = self.index.len();
            self.index.insert(v, i);
            self.low.insert(v, i);
            self.stack.push(v);
            self.on_stack.insert(v);
            for w in self.next.get(v).cloned().unwrap_or_default() {
                if !self.index.contains_key(w) {
                    self.connect(w);
                    let low = self.low[v].min(self.low[w]);
                    self.low.insert(v, low);
                } else if self.on_stack.contains(w) {
                    let low = self.low[v].min(self.index[w]);
                    self.low.insert(v, low);
                }
            }
            if self.low[v] == self.index[v] {
                let mut component = Vec::new();
                while let Some(w) = self.stack.pop() {
                    self.on_stack.remove(w);
                    component.push(w.to_owned());
                    if w == v {
                        break;
                    }
                }
                if component.len() > 1 {
                    component.sort();
                    self.found.push(component);
                }
            }
        }
    }
    let mut tarjan = Tarjan {
        next: BTreeMap::new(),
        index: HashMap::new(),
        low: HashMap::new(),
        stack: Vec::new(),
        on_stack: BTreeSet::new(),
        found: Vec::new(),
    };
    for (from, to) in edges.keys() {
        tarjan.next.entry(from).or_default().push(to);
        tarjan.next.entry(to).or_default();
    }
    let nodes: Vec<&Path> = tarjan.next.keys().copied().collect();
    for v in nodes {
        if !tarjan.index.contains_key(v) {
            tarjan.connect(v);
        }
    }
    tarjan.found.sort();
    tarjan.found
}

/// Each cycle with its files and, per reference inside it, the paths that make it.
fn describe(root: &Path, krate: &Crate, base: &Path) -> Vec<String> {
    let edges = edges(krate);
    let show = |p: &Path| p.strip_prefix(base).unwrap_or(p).display().to_string();
    cycles(&edges)
        .into_iter()
        .map(|component| {
            let files: Vec<String> = component.iter().map(|f| show(f)).collect();
            let mut text = format!("{}: cycle between {}", show(root), files.join(", "));
            for ((from, to), names) in &edges {
                if component.contains(from) && component.contains(to) {
                    let names: Vec<&str> = names.iter().map(String::as_str).collect();
                    let _ = write!(
                        text,
                        "\n    {} -> {}: {}",
                        show(from),
                        show(to),
                        names.join(", ")
                    );
                }
            }
            text
        })
        .collect()
}

/// The crate roots: the library and every binary.
fn roots(src: &Path) -> Vec<PathBuf> {
    let mut roots = vec![src.join("lib.rs"), src.join("main.rs")];
    let mut bins: Vec<PathBuf> = std::fs::read_dir(src.join("bin"))
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .filter_map(|p| match p.extension() {
            Some(ext) if ext == "rs" => Some(p),
            None if p.join("main.rs").is_file() => Some(p.join("main.rs")),
            _ => None,
        })
        .collect();
    bins.sort();
    roots.extend(bins);
    roots.retain(|r| r.is_file());
    roots
}

#[test]
fn no_import_cycles_between_source_files() {
    let base = Path::new(env!("CARGO_MANIFEST_DIR"));
    let read = |p: &Path| std::fs::read_to_string(p).ok();
    let mut found = Vec::new();
    for root in roots(&base.join("src")) {
        let krate = load(&root, &read).unwrap_or_else(|e| panic!("{e}"));
        found.extend(describe(&root, &krate, base));
    }
    assert!(
        found.is_empty(),
        "{} import cycle(s) between source files:\n{}",
        found.len(),
        found.join("\n")
    );
}

#[test]
fn references_resolve_to_the_file_of_their_module() {
    let files: HashMap<PathBuf, &str> = [
        ("lib.rs", "mod a; mod b; mod c; pub mod d;"),
        (
            "a.rs",
            "use crate::b::X;\n\
             fn k() { X::default(); }\n\
             mod inner { pub fn f() { super::super::c::g(); } }\n\
             #[cfg(test)] mod tests { use crate::c::*; }",
        ),
        (
            "b.rs",
            "pub struct X;\n\
             pub fn h() { tracing::info!(x = %crate::a::inner::f()); }",
        ),
        (
            "c.rs",
            "pub fn g() {}\n\
             #[cfg(test)] fn t() { crate::a::inner::f(); }",
        ),
        (
            "d/mod.rs",
            "mod e; mod f;\n\
             pub use e::Y;\n\
             #[cfg(all(test, unix))] fn t() { f::Z; }",
        ),
        (
            "d/e.rs",
            "pub struct Y; pub(super) fn y() { let _ = super::f::Z; }",
        ),
        (
            "d/f.rs",
            "use super::{self as d, e};\n\
             pub struct Z;\n\
             #[derive(Debug)] #[doc = \"crate::d::Y\"] struct W(e::Y);\n\
             fn z() { d::Y; }",
        ),
    ]
    .into_iter()
    .map(|(p, t)| (Path::new("src").join(p), t))
    .collect();
    let read = |p: &Path| files.get(p).map(|t| (*t).to_owned());
    let krate = load(Path::new("src/lib.rs"), &read).unwrap();
    let edges = edges(&krate);
    let shown: Vec<String> = edges
        .iter()
        .map(|((from, to), names)| {
            let names: Vec<&str> = names.iter().map(String::as_str).collect();
            format!(
                "{} -> {}: {}",
                from.display(),
                to.display(),
                names.join(" ")
            )
        })
        .collect();
    assert_eq!(
        shown,
        [
            "src/a.rs -> src/b.rs: crate::b::X",
            "src/a.rs -> src/c.rs: super::super::c::g",
            "src/b.rs -> src/a.rs: crate::a::inner::f",
            "src/d/e.rs -> src/d/f.rs: super::f::Z",
            "src/d/f.rs -> src/d/e.rs: e::Y super::e",
            "src/d/f.rs -> src/d/mod.rs: d::Y super",
            "src/d/mod.rs -> src/d/e.rs: e::Y",
        ]
    );
    let cycles: Vec<Vec<String>> = cycles(&edges)
        .into_iter()
        .map(|c| c.iter().map(|p| p.display().to_string()).collect())
        .collect();
    assert_eq!(
        cycles,
        [
            vec!["src/a.rs", "src/b.rs"],
            vec!["src/d/e.rs", "src/d/f.rs", "src/d/mod.rs"],
        ]
    );
}
