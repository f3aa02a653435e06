//! What the binary creates and trusts on disk, run as the real `decnet`: the SQLite
//! file is private to its user, and a JWT key file someone else could have planted or
//! read is refused.

use std::{
    os::unix::{
        fs::{MetadataExt, PermissionsExt},
        process::CommandExt,
    },
    path::Path,
    process::{Command, Output},
};

use nix::sys::signal::Signal;

use crate::helpers::{eventually, process::Decnet, WAIT};

const BIN: &str = env!("CARGO_BIN_EXE_decnet");

/// `decnet ARGS` in `dir` with only `PATH` and `env`, under the usual umask 022, so
/// whatever mask the files get is the binary's own doing.
fn decnet(args: &[&str], env: &[(&str, &str)], dir: &Path) -> Output {
    let mut cmd = Command::new(BIN);
    cmd.args(args)
        .current_dir(dir)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .envs(env.iter().copied());
    // SAFETY: umask is async-signal-safe and touches no memory of the parent.
    unsafe {
        cmd.pre_exec(|| {
            libc::umask(0o022);
            Ok(())
        });
    }
    cmd.output().expect("decnet runs")
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Exit status 2 and one line on stderr, which is returned.
fn refused(out: &Output) -> String {
    let err = stderr(out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert_eq!(
        err.trim_end().lines().count(),
        1,
        "one line expected: {err}"
    );
    err
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .mode()
        & 0o7777
}

#[test]
fn the_sqlite_file_is_created_private() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("decnet.db");
    let url = format!("sqlite://{}?mode=rwc", db.display());
    let out = decnet(&["migrate"], &[("DECNET_DATABASE_URL", &url)], dir.path());
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(mode(&db), 0o600, "password hashes and secrets live here");
    // `decnet user add` creates it too, and the same way.
    let other = dir.path().join("other.db");
    let url = format!("sqlite://{}?mode=rwc", other.display());
    let out = decnet(
        &["user", "list"],
        &[("DECNET_DATABASE_URL", &url)],
        dir.path(),
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(mode(&other), 0o600);
}

fn plant_key(dir: &Path, mode: u32) -> std::path::PathBuf {
    let key = dir.join(".decnet-jwt-secret");
    std::fs::write(&key, "planted-key-known-to-the-attacker-0123456789").unwrap();
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(mode)).unwrap();
    key
}

/// `decnet serve` in `dir`, on a free port and without a bus; a refusal is expected,
/// and a start instead is caught by the wait for the exit, not left hanging.
async fn serve_refused(dir: &Path) -> String {
    let mut serve = Decnet::spawn(
        &["serve"],
        &[
            ("DECNET_API_BIND", "127.0.0.1:0".into()),
            ("DECNET_BUS_ENABLED", "false".into()),
        ],
        dir,
    );
    let code = serve.exit_code().await;
    let log = serve.log();
    assert_eq!(code, Some(2), "{log}");
    assert_eq!(
        log.trim_end().lines().count(),
        1,
        "one line expected: {log}"
    );
    log
}

#[actix_rt::test]
async fn serve_refuses_a_jwt_key_file_others_can_read() {
    for open in [0o644, 0o640, 0o604, 0o620] {
        let dir = tempfile::tempdir().unwrap();
        let key = plant_key(dir.path(), open);
        let err = serve_refused(dir.path()).await;
        assert!(err.contains(".decnet-jwt-secret"), "{err}");
        assert!(err.contains(&format!("{open:04o}")), "{err}");
        // Refused before anything was created or served.
        assert!(!dir.path().join("decnet.db").exists());
        assert_eq!(mode(&key), open, "left as found");
    }
}

#[actix_rt::test]
async fn serve_refuses_a_jwt_key_file_another_user_owns() {
    let dir = tempfile::tempdir().unwrap();
    let key = plant_key(dir.path(), 0o600);
    // SAFETY: geteuid has no preconditions.
    let me = unsafe { libc::geteuid() };
    if me == 0 {
        std::os::unix::fs::chown(&key, Some(65534), Some(65534)).unwrap();
    } else {
        // Unprivileged, a file owned by someone else stands in through a link.
        std::fs::remove_file(&key).unwrap();
        std::os::unix::fs::symlink("/etc/passwd", &key).unwrap();
    }
    let owner = std::fs::metadata(&key).unwrap().uid();
    assert_ne!(owner, me);
    let err = serve_refused(dir.path()).await;
    assert!(err.contains(&format!("uid {owner}")), "{err}");
    assert!(!dir.path().join("decnet.db").exists());
}

#[actix_rt::test]
async fn serve_uses_a_private_jwt_key_file() {
    let dir = tempfile::tempdir().unwrap();
    plant_key(dir.path(), 0o600);
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut serve = Decnet::spawn(
        &["serve"],
        &[
            ("DECNET_API_BIND", format!("127.0.0.1:{port}")),
            ("DECNET_BUS_ENABLED", "false".into()),
        ],
        dir.path(),
    );
    let http = reqwest::Client::new();
    let url = format!("http://127.0.0.1:{port}/healthz");
    eventually(WAIT, "the API", || async {
        http.get(&url)
            .send()
            .await
            .ok()?
            .status()
            .is_success()
            .then_some(())
    })
    .await;
    serve.signal(Signal::SIGTERM);
    assert_eq!(serve.exit_code().await, Some(0), "{}", serve.log());
}

#[test]
fn user_names_with_invisible_formatting_characters_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("d.db").display());
    let out = decnet(
        &[
            "user",
            "add",
            "ad\u{202E}nim",
            "--role",
            "admin",
            "--password-stdin",
        ],
        // Migrations log at info on the way.
        &[("DECNET_DATABASE_URL", &url), ("RUST_LOG", "error")],
        dir.path(),
    );
    let err = refused(&out);
    assert!(err.contains("invisible formatting"), "{err}");
}
