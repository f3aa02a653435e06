//! `decnet init`, run as the real binary.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use tempfile::TempDir;

const BIN: &str = env!("CARGO_BIN_EXE_decnet");
const UNITS: [&str; 3] = [
    "decnet-api.service",
    "decnet-webhook.service",
    "decnet.target",
];

fn tempdir() -> TempDir {
    tempfile::tempdir().expect("create a temporary directory")
}

/// `decnet init` into `dest`. `--bin` is this build of decnet and
/// `--install-dir` an existing directory, because `systemd-analyze verify`
/// checks that the executable exists.
fn init(dest: &Path, install_dir: &Path, extra: &[&str]) -> Output {
    Command::new(BIN)
        .arg("init")
        .arg("--dest")
        .arg(dest)
        .args(["--user", "nobody", "--group", "nogroup", "--bin", BIN])
        .arg("--install-dir")
        .arg(install_dir)
        .args(extra)
        .output()
        .expect("run decnet init")
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn assert_ok(out: &Output) {
    assert!(out.status.success(), "decnet init failed: {}", stderr(out));
}

/// Exit status 2 and a single line on stderr, which is returned.
fn assert_refused(out: &Output) -> String {
    let err = stderr(out);
    assert_eq!(out.status.code(), Some(2), "stderr: {err}");
    assert_eq!(
        err.trim_end().lines().count(),
        1,
        "one line expected: {err}"
    );
    err
}

fn read(path: &Path) -> String {
    fs::read_to_string(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

/// The copy of `units/` a test may add templates to.
fn units_copy() -> TempDir {
    let copy = tempdir();
    let units = Path::new(env!("CARGO_MANIFEST_DIR")).join("units");
    for entry in fs::read_dir(&units).expect("read units/") {
        let path = entry.expect("read units/").path();
        let name = path.file_name().expect("a file name");
        fs::copy(&path, copy.path().join(name)).expect("copy a unit template");
    }
    copy
}

fn systemd_analyze_verify(files: &[PathBuf]) {
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .args(files)
        // A level inherited from the caller could hide the warnings we check.
        .env_remove("SYSTEMD_LOG_LEVEL")
        .output();
    let out = match out {
        Ok(out) => out,
        Err(e) if e.kind() == io::ErrorKind::NotFound => panic!(
            "systemd-analyze is not on PATH; install it to run this test \
             (Debian/Ubuntu: apt-get install --no-install-recommends systemd)"
        ),
        Err(e) => panic!("cannot run systemd-analyze: {e}"),
    };
    let err = stderr(&out);
    // Unknown keys and bad values are only warnings (exit 0), so any output
    // fails the test, except the one this test's `--user nobody` earns.
    let complaints: Vec<&str> = err
        .lines()
        .filter(|l| !l.contains("Special user nobody configured"))
        .collect();
    assert!(
        out.status.success() && complaints.is_empty(),
        "systemd-analyze verify rejected the units:\n{err}"
    );
}

#[test]
fn init_renders_units_that_systemd_accepts() {
    let (dest, install) = (tempdir(), tempdir());
    let out = init(dest.path(), install.path(), &[]);
    assert_ok(&out);

    let files: Vec<PathBuf> = UNITS.iter().map(|u| dest.path().join(u)).collect();
    let report = stdout(&out);
    for file in &files {
        assert!(
            report.contains(&format!("wrote {}", file.display())),
            "{report}"
        );
        let text = read(file);
        for jinja in ["{{", "{%", "{#"] {
            assert!(!text.contains(jinja), "{jinja} left in {}", file.display());
        }
    }
    let webhook = read(&files[1]);
    assert!(webhook.contains(&format!("\nExecStart={BIN} webhook\n")));
    assert!(webhook.contains("\nUser=nobody\n"));
    let api = read(&files[0]);
    assert!(api.contains(&format!("\nExecStart={BIN} api\n")));
    let target = read(&files[2]);
    assert!(target.contains("\nWants=decnet-api.service decnet-webhook.service\n"));
    // Descriptors for connections and deliveries, past systemd's default of 1024; and
    // what the services create (the SQLite file among it) is private to their user.
    for service in [&api, &webhook] {
        assert!(service.contains("\nLimitNOFILE=65536\n"), "{service}");
        assert!(service.contains("\nUMask=0077\n"), "{service}");
    }

    systemd_analyze_verify(&files);
}

#[test]
fn init_renders_a_new_template_without_code_change() {
    let (dest, install, units) = (tempdir(), tempdir(), units_copy());
    fs::write(
        units.path().join("decnet-foo.service.j2"),
        "[Unit]\nDescription=DECNET foo\nPartOf=decnet.target\n\n\
         [Service]\nUser={{ user }}\nGroup={{ group }}\n\
         WorkingDirectory={{ install_dir }}\nExecStart={{ bin }} foo\n\n\
         [Install]\nWantedBy=decnet.target\n",
    )
    .expect("write decnet-foo.service.j2");
    let units_arg = units.path().to_str().expect("a UTF-8 temp path");

    let out = init(dest.path(), install.path(), &["--units", units_arg]);
    assert_ok(&out);

    let foo = dest.path().join("decnet-foo.service");
    assert!(read(&foo).contains(&format!("\nExecStart={BIN} foo\n")));
    let target = read(&dest.path().join("decnet.target"));
    assert!(
        target.contains("\nWants=decnet-api.service decnet-foo.service decnet-webhook.service\n"),
        "{target}"
    );
    let mut files: Vec<PathBuf> = UNITS.iter().map(|u| dest.path().join(u)).collect();
    files.push(foo);
    systemd_analyze_verify(&files);
}

#[test]
fn init_refuses_to_overwrite_a_changed_unit_without_force() {
    let (dest, install) = (tempdir(), tempdir());
    assert_ok(&init(dest.path(), install.path(), &[]));
    let api = dest.path().join("decnet-api.service");
    let rendered = read(&api);
    fs::write(&api, "# edited by hand\n").expect("edit the unit");

    let err = assert_refused(&init(dest.path(), install.path(), &[]));
    assert!(err.contains(&api.display().to_string()), "{err}");
    assert!(err.contains("--force"), "{err}");
    assert_eq!(read(&api), "# edited by hand\n");

    let out = init(dest.path(), install.path(), &["--force"]);
    assert_ok(&out);
    assert_eq!(read(&api), rendered);
    let report = stdout(&out);
    assert!(
        report.contains(&format!("wrote {}", api.display())),
        "{report}"
    );
    let webhook = dest.path().join("decnet-webhook.service");
    assert!(
        report.contains(&format!("unchanged {}", webhook.display())),
        "{report}"
    );
}

#[test]
fn init_fails_on_an_undefined_variable_naming_the_template() {
    let (dest, install, units) = (tempdir(), tempdir(), units_copy());
    fs::write(
        units.path().join("decnet-bad.service.j2"),
        "[Service]\nExecStart={{ bin }} bad --port {{ port }}\n",
    )
    .expect("write decnet-bad.service.j2");
    let units_arg = units.path().to_str().expect("a UTF-8 temp path");

    let err = assert_refused(&init(dest.path(), install.path(), &["--units", units_arg]));
    assert!(err.contains("decnet-bad.service.j2"), "{err}");
    assert!(err.contains("port"), "{err}");
    let written = fs::read_dir(dest.path()).expect("read dest").count();
    assert_eq!(written, 0, "a failed init must write nothing");
}

#[test]
fn init_fails_clearly_on_a_missing_destination() {
    let (dest, install) = (tempdir(), tempdir());
    let missing = dest.path().join("no-such-dir");
    let err = assert_refused(&init(&missing, install.path(), &[]));
    assert!(err.contains(&missing.display().to_string()), "{err}");
}
