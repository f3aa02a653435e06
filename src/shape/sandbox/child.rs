//! The sandbox process: `decnet` started by the sandbox with [`ARG`], rendering
//! templates it reads on stdin until stdin closes.
//!
//! Its address space is capped at its size at start plus the memory limit, so a
//! template that builds a value too large for it makes the allocation fail, which
//! aborts this process only ("memory allocation of N bytes failed" on stderr, which
//! the parent reads to say so). It dumps no core, ignores the terminal's and the
//! service manager's stop signals (it ends when its parent closes the pipe, or dies:
//! `PR_SET_PDEATHSIG`), and runs nothing but the template engine.

use std::{
    collections::HashMap,
    io::{self, BufReader, BufWriter},
    panic::{catch_unwind, AssertUnwindSafe},
    process::ExitCode,
    sync::Arc,
};

use bytes::Bytes;

use super::{
    super::{error::ShapeError, template::Compiled},
    wire,
};

/// The first argument that makes `decnet` a sandbox process.
pub const ARG: &str = "__template-sandbox";
/// The argument before the memory limit, in MiB.
pub const MEMORY_ARG: &str = "--memory-mib";

/// Compiled templates kept (keyed by source); all are dropped when it is full.
const CACHE: usize = 64;
/// A compile that grew this process by more than this is not kept: constants the
/// engine folded (`"x" * 100000000`) would otherwise sit in the cache and leave
/// every other template less room. Real templates compile to kilobytes.
const MAX_CACHED_GROWTH: u64 = 4 << 20;
/// Largest request taken: a batch of events as large as the bus allows.
const MAX_REQUEST: usize = 1 << 30;

/// Run as the sandbox when the command line says so (`decnet __template-sandbox
/// --memory-mib N`); `None` otherwise. Call first thing in `main`.
pub fn entry() -> Option<ExitCode> {
    let mut args = std::env::args_os().skip(1);
    if args.next()? != ARG {
        return None;
    }
    let memory_mib = match (args.next(), args.next()) {
        (Some(flag), Some(value)) if flag == MEMORY_ARG => value.to_str()?.parse::<u64>().ok(),
        _ => None,
    };
    let Some(memory_mib) = memory_mib else {
        eprintln!("usage: decnet {ARG} {MEMORY_ARG} N");
        return Some(ExitCode::from(2));
    };
    // Panics are answered as render errors; the default hook would only write them
    // to a pipe nobody reads until this process dies.
    std::panic::set_hook(Box::new(|_| {}));
    if let Err(e) = confine(memory_mib) {
        eprintln!("cannot confine the template sandbox: {e}");
        return Some(ExitCode::from(1));
    }
    let stdin = BufReader::new(io::stdin().lock());
    let stdout = BufWriter::new(io::stdout().lock());
    match serve(stdin, stdout) {
        Ok(()) => Some(ExitCode::SUCCESS),
        Err(_) => Some(ExitCode::from(1)),
    }
}

/// Answer requests until the input ends.
pub fn serve(mut input: impl io::Read, mut output: impl io::Write) -> io::Result<()> {
    wire::write_all(&mut output, &wire::frame(wire::HELLO)?)?;
    let mut cache: HashMap<String, Result<Arc<Compiled>, ShapeError>> = HashMap::new();
    while let Some(body) = wire::read_frame(&mut input, MAX_REQUEST)? {
        let request = wire::decode_request(&body)
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "malformed request"))?;
        let compiled = match cache.get(request.source) {
            Some(compiled) => compiled.clone(),
            None => {
                let before = resident();
                let compiled = guarded(|| Compiled::new(request.source))
                    .and_then(|r| r)
                    .map(Arc::new);
                let grew = resident().saturating_sub(before);
                if grew <= MAX_CACHED_GROWTH {
                    if cache.len() >= CACHE {
                        cache.clear();
                    }
                    cache.insert(request.source.to_owned(), compiled.clone());
                }
                compiled
            }
        };
        let results: Vec<Result<Bytes, ShapeError>> = request
            .envelopes
            .iter()
            .map(|envelope| match &compiled {
                Ok(template) => guarded(|| template.render(envelope)).and_then(|r| r),
                Err(e) => Err(e.clone()),
            })
            .collect();
        drop(body);
        wire::write_all(&mut output, &wire::encode_response(&results)?)?;
    }
    Ok(())
}

/// Run `f`, turning a panic of the engine into a render error.
fn guarded<T>(f: impl FnOnce() -> T) -> Result<T, ShapeError> {
    catch_unwind(AssertUnwindSafe(f)).map_err(|panic| {
        let what = panic
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| panic.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "unknown".into());
        ShapeError::Render {
            line: None,
            message: format!("the template engine failed: {what}"),
        }
    })
}

/// Cap this process's memory and cut it loose from its parent's signals.
#[cfg(target_os = "linux")]
fn confine(memory_mib: u64) -> io::Result<()> {
    // SAFETY: plain system calls on this process with constant or local arguments;
    // nothing here touches memory the Rust side owns.
    unsafe {
        if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
            return Err(io::Error::last_os_error());
        }
        // The parent may have gone between fork and prctl.
        if libc::getppid() == 1 {
            return Err(io::Error::other("the parent is gone"));
        }
        for signal in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP] {
            libc::signal(signal, libc::SIG_IGN);
        }
        let no_core = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        if libc::setrlimit(libc::RLIMIT_CORE, &no_core) != 0 {
            return Err(io::Error::last_os_error());
        }
    }
    let limit = address_space()?.saturating_add(memory_mib.saturating_mul(1 << 20));
    let rlim = libc::rlimit {
        rlim_cur: limit,
        rlim_max: limit,
    };
    // SAFETY: as above; `rlim` lives across the call.
    if unsafe { libc::setrlimit(libc::RLIMIT_AS, &rlim) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// This process's address space now, in bytes.
#[cfg(target_os = "linux")]
fn address_space() -> io::Result<u64> {
    statm(0).ok_or_else(|| io::Error::other("unreadable /proc/self/statm"))
}

/// This process's resident memory now, in bytes (0 where unknown).
fn resident() -> u64 {
    statm(1).unwrap_or(0)
}

/// Field `index` of `/proc/self/statm` (sizes in pages), in bytes.
fn statm(index: usize) -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(index)?.parse().ok()?;
    // SAFETY: sysconf reads a constant of the system.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    Some(pages.saturating_mul(u64::try_from(page).unwrap_or(4096)))
}

/// Elsewhere there is no address-space limit to rely on: refuse to run rather
/// than render unbounded.
#[cfg(not(target_os = "linux"))]
fn confine(_memory_mib: u64) -> io::Result<()> {
    Err(io::Error::other(
        "the template sandbox needs Linux (RLIMIT_AS, PR_SET_PDEATHSIG)",
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::Event;

    /// The protocol, in process (the limits need the real process: tests/it).
    #[test]
    fn serves_renders_and_errors_in_order_until_input_ends() {
        let event = Event::new(
            "e1".into(),
            "attacker.observed".into(),
            "2026-04-24T10:00:00+00:00".into(),
            "first_sighting".into(),
            serde_json::json!({"n": 1}),
        );
        let mut input = Vec::new();
        for source in ["{\"id\": {{ id }}}", "{% if %}", "{\"id\": {{ id }}}"] {
            input.extend(wire::encode_request(source, std::slice::from_ref(&event.body)).unwrap());
        }
        input.extend(
            wire::encode_request("{{ payload.n }}x", std::slice::from_ref(&event.body)).unwrap(),
        );
        let mut output = Vec::new();
        serve(&input[..], &mut output).unwrap();

        let mut out = &output[..];
        let hello = wire::read_frame(&mut out, usize::MAX).unwrap().unwrap();
        assert_eq!(hello, wire::HELLO);
        let mut next = || {
            let body = wire::read_frame(&mut out, usize::MAX).unwrap().unwrap();
            let mut results = wire::decode_response(&body).unwrap();
            assert_eq!(results.len(), 1);
            results.remove(0)
        };
        assert_eq!(next().unwrap(), Bytes::from_static(b"{\"id\":\"e1\"}"));
        assert!(matches!(
            next(),
            Err(ShapeError::Syntax { line: Some(1), .. })
        ));
        assert_eq!(next().unwrap(), Bytes::from_static(b"{\"id\":\"e1\"}"));
        assert!(matches!(next(), Err(ShapeError::NotJson(_))));
        assert!(wire::read_frame(&mut out, usize::MAX).unwrap().is_none());
    }
}
