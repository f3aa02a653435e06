//! The built `decnet` binary as a child process, its stderr collected.

use std::{
    io::{BufRead, BufReader, Write},
    process::{Child, Command, Stdio},
    sync::{Arc, Mutex},
};

use nix::{
    sys::signal::{kill, Signal},
    unistd::Pid,
};

use super::{eventually, WAIT};

/// A running `decnet` with its stderr collected.
pub struct Decnet {
    child: Child,
    log: Arc<Mutex<String>>,
}

impl Decnet {
    /// `decnet ARGS` with only `PATH`, `RUST_LOG=info` and `env` in its environment.
    fn command(args: &[&str], env: &[(&str, String)], dir: &std::path::Path) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_decnet"));
        cmd.args(args)
            .current_dir(dir)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("RUST_LOG", "info");
        for (k, v) in env {
            cmd.env(k, v);
        }
        cmd
    }

    pub fn spawn(args: &[&str], env: &[(&str, String)], dir: &std::path::Path) -> Self {
        Self::start(Self::command(args, env, dir))
    }

    /// [`Decnet::spawn`] with at most `open_files` descriptors, soft and hard limit alike
    /// (as `ulimit -n` sets them).
    pub fn spawn_with_open_files(
        args: &[&str],
        env: &[(&str, String)],
        dir: &std::path::Path,
        open_files: u64,
    ) -> Self {
        use std::os::unix::process::CommandExt as _;
        let mut cmd = Self::command(args, env, dir);
        let limit = libc::rlimit {
            rlim_cur: open_files as libc::rlim_t,
            rlim_max: open_files as libc::rlim_t,
        };
        // SAFETY: setrlimit is async-signal-safe and touches nothing of the parent.
        unsafe {
            cmd.pre_exec(move || {
                if libc::setrlimit(libc::RLIMIT_NOFILE, &limit) == 0 {
                    Ok(())
                } else {
                    Err(std::io::Error::last_os_error())
                }
            });
        }
        Self::start(cmd)
    }

    fn start(mut cmd: Command) -> Self {
        cmd.stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("decnet starts");
        let log = Arc::new(Mutex::new(String::new()));
        let stderr = child.stderr.take().expect("stderr");
        let sink = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let mut log = sink.lock().unwrap();
                log.push_str(&line);
                log.push('\n');
            }
        });
        Self { child, log }
    }

    /// Its limit on open files, as it runs.
    pub fn open_files_limit(&self) -> libc::rlimit {
        let mut limit = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: prlimit reads the child's limit into `limit`, changing nothing.
        let done = unsafe {
            libc::prlimit(
                self.pid() as libc::pid_t,
                libc::RLIMIT_NOFILE,
                std::ptr::null(),
                &mut limit,
            )
        };
        assert_eq!(done, 0, "{}", std::io::Error::last_os_error());
        limit
    }

    /// Change its limit on open files while it runs: below what it has open, every
    /// descriptor it asks for fails with EMFILE.
    pub fn set_open_files_limit(&self, limit: libc::rlimit) {
        // SAFETY: prlimit sets the child's limit from `limit` and writes nothing back.
        let done = unsafe {
            libc::prlimit(
                self.pid() as libc::pid_t,
                libc::RLIMIT_NOFILE,
                &limit,
                std::ptr::null_mut(),
            )
        };
        assert_eq!(done, 0, "{}", std::io::Error::last_os_error());
    }

    pub fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn signal(&self, signal: Signal) {
        kill(Pid::from_raw(self.child.id() as i32), signal).expect("signal sent");
    }

    pub async fn wait_log(&self, needle: &str) {
        eventually(WAIT, needle, || async {
            self.log().contains(needle).then_some(())
        })
        .await;
    }

    pub async fn exit_code(&mut self) -> Option<i32> {
        let Self { child, log } = self;
        eventually(WAIT, "the process to exit", || {
            let exited = child.try_wait();
            let log = log.lock().unwrap().clone();
            async move {
                match exited {
                    Ok(Some(status)) => Ok(status.code()),
                    _ => Err(log),
                }
            }
        })
        .await
    }
}

impl Decnet {
    /// `kill -9`, and check that is how it ended.
    pub fn kill9(&mut self) {
        kill(Pid::from_raw(self.child.id() as i32), Signal::SIGKILL).expect("SIGKILL sent");
        let status = self.child.wait().expect("reaped");
        assert_eq!(
            std::os::unix::process::ExitStatusExt::signal(&status),
            Some(9),
            "killed by SIGKILL"
        );
    }

    /// `decnet user add NAME --role ROLE --password-stdin`, to completion.
    pub fn add_user(
        env: &[(&str, String)],
        dir: &std::path::Path,
        name: &str,
        role: &str,
        password: &str,
    ) {
        let args = ["user", "add", name, "--role", role, "--password-stdin"];
        let out = Self::run(&args, env, dir, &format!("{password}\n"));
        assert!(
            out.status.success(),
            "decnet user add {name}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// `decnet ARGS` to completion with `stdin` as its input.
    pub fn run(
        args: &[&str],
        env: &[(&str, String)],
        dir: &std::path::Path,
        stdin: &str,
    ) -> std::process::Output {
        let mut child = Self::command(args, env, dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("decnet starts");
        child
            .stdin
            .take()
            .expect("stdin piped")
            .write_all(stdin.as_bytes())
            .expect("stdin written");
        child.wait_with_output().expect("decnet ends")
    }

    /// A `kB` field of `/proc/<pid>/status` (`VmRSS`, `VmHWM`), in bytes.
    pub fn status_bytes(&self, field: &str) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .expect("/proc/<pid>/status of a running decnet");
        status
            .lines()
            .find_map(|line| line.strip_prefix(field)?.strip_prefix(':'))
            .and_then(|v| v.trim().strip_suffix("kB"))
            .and_then(|kib| kib.trim().parse::<u64>().ok())
            .map(|kib| kib * 1024)
            .unwrap_or_else(|| panic!("no {field} in {status}"))
    }

    /// Kill it now (no graceful stop) and reap it.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    pub fn assert_running(&mut self) {
        assert!(
            matches!(self.child.try_wait(), Ok(None)),
            "decnet exited: {}",
            self.log()
        );
    }
}

impl Drop for Decnet {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Resident memory of process `pid` in MiB, from `/proc/<pid>/status`.
pub fn rss_mib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kb| kb / 1024)
}

/// The children of process `pid`, from `/proc/<pid>/task/*/children`.
pub fn children(pid: u32) -> Vec<u32> {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return Vec::new();
    };
    tasks
        .flatten()
        .filter_map(|t| std::fs::read_to_string(t.path().join("children")).ok())
        .flat_map(|c| {
            c.split_whitespace()
                .filter_map(|p| p.parse().ok())
                .collect::<Vec<u32>>()
        })
        .collect()
}
