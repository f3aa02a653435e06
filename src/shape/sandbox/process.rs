//! One sandbox process as its parent sees it: started on demand, given one request
//! at a time with a deadline, killed when it overruns, reaped to say how it died.

use std::{
    io::{self, Read, Write},
    os::fd::{AsRawFd, RawFd},
    path::Path,
    process::{Child, ChildStderr, ChildStdin, ChildStdout, Command, ExitStatus, Stdio},
    time::{Duration, Instant},
};

use super::{
    child::{ARG, MEMORY_ARG},
    wire::HELLO,
};

/// Why a request got no answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// It ran past the deadline; the process was killed.
    TimedOut,
    /// An allocation hit the process's memory limit and aborted it.
    OutOfMemory,
    /// The process died some other way.
    Crashed(String),
    /// No process could be started or spoken to.
    Unavailable(String),
}

/// How long a new process may take to say hello (a cold start of a large binary).
const START_TIMEOUT: Duration = Duration::from_secs(10);
/// Largest answer taken: a batch of outputs at their cap, with room for errors.
const MAX_ANSWER: usize = 64 << 20;
/// What is read of a dead process's stderr to say why it died.
const MAX_LAST_WORDS: u64 = 4096;

pub struct Process {
    child: Child,
    stdin: ChildStdin,
    stdout: ChildStdout,
    stderr: ChildStderr,
}

impl Process {
    /// Start `program` as a sandbox limited to `memory_mib`, and wait for its hello.
    pub fn start(program: &Path, memory_mib: u64) -> Result<Self, Failure> {
        let unavailable = |what: String| Failure::Unavailable(what);
        let mut child = Command::new(program)
            .arg(ARG)
            .arg(MEMORY_ARG)
            .arg(memory_mib.to_string())
            .env_clear()
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| unavailable(format!("cannot start {}: {e}", program.display())))?;
        let (Some(stdin), Some(stdout), Some(stderr)) =
            (child.stdin.take(), child.stdout.take(), child.stderr.take())
        else {
            let _ = child.kill();
            let _ = child.wait();
            return Err(unavailable("the sandbox's pipes were not set up".into()));
        };
        let mut process = Self {
            child,
            stdin,
            stdout,
            stderr,
        };
        match process.receive(Instant::now() + START_TIMEOUT, HELLO.len()) {
            Ok(hello) if hello == HELLO => Ok(process),
            Ok(_) | Err(Failure::Crashed(_)) => Err(unavailable(format!(
                "{} is not this build's template sandbox",
                program.display()
            ))),
            Err(Failure::Unavailable(e)) => Err(unavailable(e)),
            Err(e) => Err(unavailable(format!("the sandbox did not start: {e:?}"))),
        }
    }

    /// Write one request. A process that died while idle fails here.
    pub fn send(&mut self, request: &[u8]) -> Result<(), Failure> {
        match self
            .stdin
            .write_all(request)
            .and_then(|()| self.stdin.flush())
        {
            Ok(()) => Ok(()),
            Err(_) => Err(self.died()),
        }
    }

    /// Read one answer of at most `max` bytes by `deadline`; past it the process is
    /// killed.
    pub fn receive(&mut self, deadline: Instant, max: usize) -> Result<Vec<u8>, Failure> {
        let mut len = [0u8; 4];
        self.read_by(&mut len, deadline)?;
        let len = u32::from_le_bytes(len) as usize;
        if len > max {
            self.kill();
            return Err(Failure::Crashed(format!(
                "it answered {len} bytes, more than {max}"
            )));
        }
        let mut body = vec![0u8; len];
        self.read_by(&mut body, deadline)?;
        Ok(body)
    }

    /// [`Self::receive`] with the largest answer a render may give.
    pub fn answer(&mut self, deadline: Instant) -> Result<Vec<u8>, Failure> {
        self.receive(deadline, MAX_ANSWER)
    }

    fn read_by(&mut self, buf: &mut [u8], deadline: Instant) -> Result<(), Failure> {
        let mut filled = 0;
        while filled < buf.len() {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                self.kill();
                return Err(Failure::TimedOut);
            }
            match readable(self.stdout.as_raw_fd(), left) {
                Ok(true) => {}
                Ok(false) => continue,
                Err(e) => {
                    self.kill();
                    return Err(Failure::Unavailable(format!(
                        "cannot wait on the sandbox: {e}"
                    )));
                }
            }
            match self.stdout.read(&mut buf[filled..]) {
                Ok(0) => return Err(self.died()),
                Ok(n) => filled += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => return Err(self.died()),
            }
        }
        Ok(())
    }

    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Its pipe broke: reap it and say why it ended, from its last words on stderr
    /// (Rust prints the failed allocation before it aborts).
    fn died(&mut self) -> Failure {
        // Closed pipes but still running would make `wait` hang: make sure it ends.
        let _ = self.child.kill();
        let status = self.child.wait();
        let mut said = String::new();
        let _ = (&mut self.stderr)
            .take(MAX_LAST_WORDS)
            .read_to_string(&mut said);
        classify(status.ok(), &said)
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        self.kill();
    }
}

fn classify(status: Option<ExitStatus>, said: &str) -> Failure {
    if said.contains("memory allocation of") {
        return Failure::OutOfMemory;
    }
    if said.contains("has overflowed its stack") {
        return Failure::Crashed("stack overflow".into());
    }
    let status = status.map_or_else(|| "unknown status".to_owned(), |s| s.to_string());
    match said.lines().find(|l| !l.trim().is_empty()) {
        Some(line) => Failure::Crashed(format!("{status}: {}", line.trim())),
        None => Failure::Crashed(status),
    }
}

/// Wait until `fd` can be read without blocking (data, or the end), up to `timeout`.
fn readable(fd: RawFd, timeout: Duration) -> io::Result<bool> {
    let ms = i32::try_from(timeout.as_millis())
        .unwrap_or(i32::MAX)
        .max(1);
    let mut pfd = libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: `pfd` is a valid pollfd for the duration of the call, and the count is 1.
    let n = unsafe { libc::poll(&mut pfd, 1, ms) };
    if n < 0 {
        let e = io::Error::last_os_error();
        return match e.kind() {
            io::ErrorKind::Interrupted => Ok(false),
            _ => Err(e),
        };
    }
    Ok(n > 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn last_words_say_how_it_died() {
        let oom = "memory allocation of 100000016 bytes failed\n";
        assert_eq!(classify(None, oom), Failure::OutOfMemory);
        assert_eq!(
            classify(
                None,
                "\nthread 'main' has overflowed its stack\nfatal runtime error"
            ),
            Failure::Crashed("stack overflow".into())
        );
        assert_eq!(
            classify(None, ""),
            Failure::Crashed("unknown status".into())
        );
    }

    #[test]
    fn a_program_that_is_not_the_sandbox_is_unavailable() {
        let err = Process::start(Path::new("/bin/true"), 64).err();
        assert!(
            matches!(&err, Some(Failure::Unavailable(e)) if e.contains("not this build's")),
            "{err:?}"
        );
        let err = Process::start(Path::new("/nonexistent/decnet"), 64).err();
        assert!(
            matches!(&err, Some(Failure::Unavailable(e)) if e.contains("cannot start")),
            "{err:?}"
        );
    }
}
