//! `decnet init`: render the systemd unit templates of `units/` into a
//! directory (by default `/etc/systemd/system`).
//!
//! Every `decnet-*.service.j2` becomes `decnet-*.service`, and `decnet.target`
//! is rendered beside them with `services` listing those units, so a new unit
//! template is picked up, and started by the target, without a code change.

use std::collections::BTreeSet;
use std::fmt;
use std::fs;
use std::io::{self, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use minijinja::{AutoEscape, Environment, ErrorKind, UndefinedBehavior, Value};

const SERVICE_PREFIX: &str = "decnet-";
const SERVICE_SUFFIX: &str = ".service.j2";
const TARGET: &str = "decnet.target";
const TARGET_J2: &str = "decnet.target.j2";
/// The variables templates may use.
const VARIABLES: &str = "bin, user, group, install_dir, services";

/// Builds one `(file name, contents)` entry of [`EMBEDDED`] from `units/`.
macro_rules! unit {
    ($name:literal) => {
        ($name, include_str!(concat!("../units/", $name)))
    };
}

/// The templates compiled into the binary. A unit test checks that every
/// `units/decnet-*.service.j2` is listed here, so a new one cannot be missed.
const EMBEDDED: &[(&str, &str)] = &[
    unit!("decnet-api.service.j2"),
    unit!("decnet-webhook.service.j2"),
    unit!("decnet.target"),
];

#[derive(clap::Args, Debug)]
pub struct InitArgs {
    /// Directory the unit files are written to
    #[arg(long, value_name = "DIR", default_value = "/etc/systemd/system")]
    pub dest: PathBuf,

    /// User the services run as
    #[arg(long, default_value = "decnet")]
    pub user: String,

    /// Group the services run as
    #[arg(long, default_value = "decnet")]
    pub group: String,

    /// Working directory of the services; holds .env.local
    #[arg(long, value_name = "DIR", default_value = "/opt/decnet")]
    pub install_dir: PathBuf,

    /// The decnet executable the services start [default: this executable]
    #[arg(long, value_name = "PATH")]
    pub bin: Option<PathBuf>,

    /// Render the templates found in DIR instead of the built-in ones
    #[arg(long, value_name = "DIR")]
    pub units: Option<PathBuf>,

    /// Overwrite unit files whose content differs from the rendered one
    #[arg(long)]
    pub force: bool,
}

/// The running executable: `decnet init` is normally run as the installed
/// binary the units should start.
fn default_bin() -> PathBuf {
    std::env::current_exe().unwrap_or_else(|_| PathBuf::from("/usr/local/bin/decnet"))
}

#[derive(Debug, thiserror::Error)]
pub enum InitError {
    #[error("{flag} {value:?} cannot go in a unit file: {reason}")]
    InvalidValue {
        flag: &'static str,
        value: String,
        reason: &'static str,
    },
    #[error("cannot read templates from {}: {source}", .dir.display())]
    ReadTemplates { dir: PathBuf, source: io::Error },
    #[error("no decnet-*.service.j2 template in {}", .dir.display())]
    NoServices { dir: PathBuf },
    #[error("no decnet.target or decnet.target.j2 in {}", .dir.display())]
    NoTarget { dir: PathBuf },
    #[error("both decnet.target and decnet.target.j2 in {}; keep one", .dir.display())]
    TwoTargets { dir: PathBuf },
    #[error("template {template}: {unit:?} is not a valid systemd unit name")]
    UnitName { template: String, unit: String },
    #[error("template {template}: {reason}")]
    Template { template: String, reason: String },
    #[error("destination {} does not exist or is not a directory", .dir.display())]
    NoDest { dir: PathBuf },
    #[error("cannot read {}: {source}", .path.display())]
    ReadExisting { path: PathBuf, source: io::Error },
    #[error("{}", exists(.paths))]
    Exists { paths: Vec<PathBuf> },
    #[error("cannot write {}: {source}", .path.display())]
    Write { path: PathBuf, source: io::Error },
}

fn exists(paths: &[PathBuf]) -> String {
    let names: Vec<_> = paths.iter().map(|p| p.display().to_string()).collect();
    let verb = if names.len() == 1 { "exists" } else { "exist" };
    format!(
        "{} {verb} with different content; use --force to overwrite",
        names.join(", ")
    )
}

/// What `run` did with one unit file; displays as `wrote <path>` or
/// `unchanged <path>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Written {
    Wrote(PathBuf),
    Unchanged(PathBuf),
}

impl Written {
    pub fn path(&self) -> &Path {
        match self {
            Written::Wrote(p) | Written::Unchanged(p) => p,
        }
    }
}

impl fmt::Display for Written {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Written::Wrote(p) => write!(f, "wrote {}", p.display()),
            Written::Unchanged(p) => write!(f, "unchanged {}", p.display()),
        }
    }
}

/// Renders the unit templates and writes them into `args.dest`.
///
/// Nothing is written unless every template renders and no existing file
/// would be overwritten without `--force`, so a failed run leaves the
/// destination as it was.
pub fn run(args: &InitArgs) -> Result<Vec<Written>, InitError> {
    let bin = args.bin.clone().unwrap_or_else(default_bin);
    let bin = unit_path("--bin", &bin)?;
    let install_dir = unit_path("--install-dir", &args.install_dir)?;
    unit_value("--user", &args.user)?;
    unit_value("--group", &args.group)?;

    let templates = match &args.units {
        Some(dir) => read_templates(dir)?,
        None => Templates::embedded(),
    };
    let services: Vec<String> = templates
        .services
        .iter()
        .map(|(name, _)| unit_name(name))
        .collect::<Result<_, _>>()?;
    // Keep VARIABLES in step: error messages list it.
    let ctx = minijinja::context! {
        bin => bin,
        user => &args.user,
        group => &args.group,
        install_dir => install_dir,
        services => &services,
    };

    let mut env = Environment::new();
    env.set_undefined_behavior(UndefinedBehavior::Strict);
    // A unit file's last line needs its newline; Jinja drops it by default.
    env.set_keep_trailing_newline(true);
    env.set_auto_escape_callback(|_| AutoEscape::None);

    // Output names: the services' checked above, then decnet.target.
    let units = services.iter().cloned().chain([TARGET.to_owned()]);
    let sources = templates.services.iter().chain([&templates.target]);
    let mut rendered = Vec::new();
    for ((template, source), unit) in sources.zip(units) {
        let fail = |env: &Environment<'_>, err: minijinja::Error| InitError::Template {
            template: template.clone(),
            reason: describe(env, template, &ctx, &err),
        };
        env.add_template_owned(template.clone(), source.clone())
            .map_err(|e| fail(&env, e))?;
        let text = env
            .get_template(template)
            .and_then(|t| t.render(&ctx))
            .map_err(|e| fail(&env, e))?;
        rendered.push((args.dest.join(unit), text));
    }

    write_all(&args.dest, rendered, args.force)
}

/// Template sources: `services` sorted by name, `target` is decnet.target.
struct Templates {
    services: Vec<(String, String)>,
    target: (String, String),
}

impl Templates {
    fn embedded() -> Self {
        let mut services = Vec::new();
        let mut target = (String::new(), String::new());
        for &(name, source) in EMBEDDED {
            if name == TARGET {
                target = (name.to_owned(), source.to_owned());
            } else {
                services.push((name.to_owned(), source.to_owned()));
            }
        }
        services.sort();
        Templates { services, target }
    }
}

fn is_service_template(name: &str) -> bool {
    name.len() > SERVICE_PREFIX.len() + SERVICE_SUFFIX.len()
        && name.starts_with(SERVICE_PREFIX)
        && name.ends_with(SERVICE_SUFFIX)
}

fn read_templates(dir: &Path) -> Result<Templates, InitError> {
    let read_err = |source| InitError::ReadTemplates {
        dir: dir.to_owned(),
        source,
    };
    let mut services = Vec::new();
    let mut targets = Vec::new();
    for entry in fs::read_dir(dir).map_err(read_err)? {
        let path = entry.map_err(read_err)?.path();
        // Names that are not UTF-8 cannot match the patterns below.
        let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
            continue;
        };
        let is_target = name == TARGET || name == TARGET_J2;
        if !(is_target || is_service_template(name)) || !path.is_file() {
            continue;
        }
        let name = name.to_owned();
        let source = fs::read_to_string(&path).map_err(read_err)?;
        if is_target {
            targets.push((name, source));
        } else {
            services.push((name, source));
        }
    }
    if services.is_empty() {
        return Err(InitError::NoServices {
            dir: dir.to_owned(),
        });
    }
    let target = match targets.len() {
        0 => {
            return Err(InitError::NoTarget {
                dir: dir.to_owned(),
            })
        }
        1 => targets.remove(0),
        _ => {
            return Err(InitError::TwoTargets {
                dir: dir.to_owned(),
            })
        }
    };
    services.sort();
    Ok(Templates { services, target })
}

/// `decnet-foo.service.j2` -> `decnet-foo.service`, checked to be a name the
/// target's `Wants=` can list (no instance templates, no spaces).
fn unit_name(template: &str) -> Result<String, InitError> {
    let unit = template.strip_suffix(".j2").unwrap_or(template);
    let valid = unit.len() <= 255
        && unit
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, ':' | '_' | '.' | '-'));
    if valid {
        Ok(unit.to_owned())
    } else {
        Err(InitError::UnitName {
            template: template.to_owned(),
            unit: unit.to_owned(),
        })
    }
}

/// Checks a value substituted into a unit. Unit files have no quoting to rely
/// on here: whitespace splits `ExecStart=` and `ReadWritePaths=`, `%` starts a
/// specifier, `$` an environment variable, and a newline a new directive.
fn unit_value(flag: &'static str, value: &str) -> Result<(), InitError> {
    let invalid = |reason| InitError::InvalidValue {
        flag,
        value: value.to_owned(),
        reason,
    };
    if value.is_empty() {
        return Err(invalid("it is empty"));
    }
    let special = |c: char| {
        c.is_whitespace() || c.is_control() || matches!(c, '"' | '\'' | '\\' | '%' | '$' | ';')
    };
    if value.contains(special) {
        return Err(invalid(
            "it contains whitespace, a quote, a backslash, or one of % $ ;",
        ));
    }
    Ok(())
}

fn unit_path<'a>(flag: &'static str, path: &'a Path) -> Result<&'a str, InitError> {
    let invalid = |reason| InitError::InvalidValue {
        flag,
        value: path.display().to_string(),
        reason,
    };
    let value = path.to_str().ok_or_else(|| invalid("it is not UTF-8"))?;
    unit_value(flag, value)?;
    // systemd wants absolute paths in WorkingDirectory= and ReadWritePaths=.
    if !path.is_absolute() {
        return Err(invalid("it must be an absolute path"));
    }
    Ok(value)
}

/// One line for a template error. minijinja's strict mode reports only
/// "undefined value", so name the variables the context lacks.
fn describe(env: &Environment<'_>, template: &str, ctx: &Value, err: &minijinja::Error) -> String {
    let mut reason = match err.line() {
        Some(line) => format!("line {line}: {}", err.kind()),
        None => err.kind().to_string(),
    };
    if let Some(detail) = err.detail() {
        reason = format!("{reason}: {detail}");
    }
    if err.kind() != ErrorKind::UndefinedError {
        return reason;
    }
    let known = |name: &str| {
        ctx.get_attr(name).is_ok_and(|v| !v.is_undefined())
            || env.globals().any(|(global, _)| global == name)
    };
    let missing: BTreeSet<String> = env
        .get_template(template)
        .map(|t| t.undeclared_variables(false))
        .unwrap_or_default()
        .into_iter()
        .filter(|name| !known(name))
        .collect();
    if missing.is_empty() {
        return reason;
    }
    let names: Vec<String> = missing.iter().map(|n| format!("`{n}`")).collect();
    format!("{reason}: {} (defined: {VARIABLES})", names.join(", "))
}

fn write_all(
    dest: &Path,
    rendered: Vec<(PathBuf, String)>,
    force: bool,
) -> Result<Vec<Written>, InitError> {
    if !dest.is_dir() {
        return Err(InitError::NoDest {
            dir: dest.to_owned(),
        });
    }
    let mut plan = Vec::new();
    let mut conflicts = Vec::new();
    for (path, text) in rendered {
        let same = match fs::read(&path) {
            Ok(existing) => existing == text.as_bytes(),
            Err(e) if e.kind() == io::ErrorKind::NotFound => false,
            Err(source) => return Err(InitError::ReadExisting { path, source }),
        };
        let exists = !same && path.symlink_metadata().is_ok();
        if exists && !force {
            conflicts.push(path.clone());
        }
        plan.push((path, text, same));
    }
    if !conflicts.is_empty() {
        return Err(InitError::Exists { paths: conflicts });
    }

    let mut done = Vec::new();
    for (path, text, same) in plan {
        if same {
            done.push(Written::Unchanged(path));
            continue;
        }
        write_atomic(dest, &path, &text).map_err(|source| InitError::Write {
            path: path.clone(),
            source,
        })?;
        done.push(Written::Wrote(path));
    }
    Ok(done)
}

/// Writes through a temporary file in `dir` renamed over `path`, so systemd
/// never reads a half-written unit.
fn write_atomic(dir: &Path, path: &Path, text: &str) -> io::Result<()> {
    // Hidden, and without a unit suffix, so systemd ignores it meanwhile.
    // tempfile's error names the random temporary path, which would only
    // confuse: keep the kind ("permission denied"), the caller adds `path`.
    let mut tmp = tempfile::Builder::new()
        .prefix(".decnet-init-")
        .tempfile_in(dir)
        .map_err(|e| io::Error::from(e.kind()))?;
    tmp.write_all(text.as_bytes())?;
    // tempfile creates 0600; units are world-readable like the rest of the dir.
    tmp.as_file()
        .set_permissions(fs::Permissions::from_mode(0o644))?;
    tmp.as_file().sync_all()?;
    tmp.persist(path).map_err(|e| e.error)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(dest: &Path) -> InitArgs {
        InitArgs {
            dest: dest.to_owned(),
            user: "decnet".into(),
            group: "decnet".into(),
            install_dir: "/opt/decnet".into(),
            bin: Some("/usr/local/bin/decnet".into()),
            units: None,
            force: false,
        }
    }

    fn tempdir() -> tempfile::TempDir {
        tempfile::tempdir().expect("create a temporary directory")
    }

    #[test]
    fn every_service_template_in_units_is_embedded() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("units");
        let on_disk = read_templates(&dir).expect("read units/");
        let embedded = Templates::embedded();
        assert_eq!(
            embedded.services, on_disk.services,
            "update EMBEDDED in src/init.rs"
        );
        assert_eq!(embedded.target, on_disk.target);
    }

    #[test]
    fn renders_embedded_units() {
        let dest = tempdir();
        let done = run(&args(dest.path())).expect("init");
        let names: Vec<_> = done.iter().map(|w| w.path().to_owned()).collect();
        assert_eq!(
            names,
            [
                "decnet-api.service",
                "decnet-webhook.service",
                "decnet.target"
            ]
            .map(|n| dest.path().join(n))
        );
        let webhook = fs::read_to_string(dest.path().join("decnet-webhook.service")).unwrap();
        assert!(webhook.contains("\nExecStart=/usr/local/bin/decnet webhook\n"));
        assert!(webhook.contains("\nReadWritePaths=/opt/decnet /var/log/decnet\n"));
        assert!(webhook.ends_with("WantedBy=decnet.target\n"));
        let target = fs::read_to_string(dest.path().join("decnet.target")).unwrap();
        assert!(target.contains("\nWants=decnet-api.service decnet-webhook.service\n"));
        for w in &done {
            let mode = fs::metadata(w.path()).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o644, "{}", w.path().display());
        }
    }

    #[test]
    fn second_run_is_unchanged_and_conflicts_need_force() {
        let dest = tempdir();
        let mut a = args(dest.path());
        run(&a).expect("first run");
        assert!(run(&a)
            .expect("second run")
            .iter()
            .all(|w| matches!(w, Written::Unchanged(_))));

        let api = dest.path().join("decnet-api.service");
        fs::write(&api, "edited\n").unwrap();
        let err = run(&a).expect_err("conflict");
        assert!(matches!(&err, InitError::Exists { paths } if paths == std::slice::from_ref(&api)));
        assert!(err.to_string().contains("--force"));
        assert_eq!(fs::read_to_string(&api).unwrap(), "edited\n");

        a.force = true;
        let done = run(&a).expect("forced run");
        assert!(done.contains(&Written::Wrote(api.clone())));
        assert!(done.contains(&Written::Unchanged(dest.path().join("decnet.target"))));
    }

    #[test]
    fn refuses_values_that_would_break_the_unit() {
        let dest = tempdir();
        type Edit = fn(&mut InitArgs);
        let cases: [(&str, Edit); 4] = [
            ("--bin", |a| a.bin = Some("/opt/my decnet".into())),
            ("--bin", |a| a.bin = Some("decnet".into())),
            ("--install-dir", |a| a.install_dir = "/opt/%n".into()),
            ("--user", |a| a.user = "decnet\nExecStartPre=/bin/sh".into()),
        ];
        for (flag, edit) in cases {
            let mut a = args(dest.path());
            edit(&mut a);
            let err = run(&a).expect_err(flag).to_string();
            assert!(err.starts_with(flag), "{err}");
            assert!(!err.contains('\n'), "{err}");
        }
        assert_eq!(fs::read_dir(dest.path()).unwrap().count(), 0);
    }

    #[test]
    fn missing_destination_is_a_clear_error() {
        let dest = tempdir();
        let missing = dest.path().join("nope");
        let err = run(&args(&missing)).expect_err("missing dest");
        assert!(matches!(err, InitError::NoDest { .. }), "{err}");
    }

    #[test]
    fn units_dir_needs_a_target_and_a_service() {
        let dir = tempdir();
        let mut a = args(dir.path());
        a.units = Some(dir.path().to_owned());
        assert!(matches!(run(&a), Err(InitError::NoServices { .. })));
        fs::write(dir.path().join("decnet-x.service.j2"), "[Service]\n").unwrap();
        assert!(matches!(run(&a), Err(InitError::NoTarget { .. })));
        fs::write(dir.path().join("decnet.target"), "[Unit]\n").unwrap();
        fs::write(dir.path().join("decnet.target.j2"), "[Unit]\n").unwrap();
        assert!(matches!(run(&a), Err(InitError::TwoTargets { .. })));
    }

    #[test]
    fn undefined_variable_names_template_and_variable() {
        let dir = tempdir();
        fs::write(dir.path().join("decnet.target"), "[Unit]\n").unwrap();
        fs::write(
            dir.path().join("decnet-x.service.j2"),
            "[Service]\nUser={{ user }}\nExecStart={{ binary }} x\n",
        )
        .unwrap();
        let mut a = args(dir.path());
        a.units = Some(dir.path().to_owned());
        let err = run(&a).expect_err("undefined").to_string();
        assert!(err.contains("decnet-x.service.j2"), "{err}");
        assert!(err.contains("line 3"), "{err}");
        assert!(err.contains("`binary`"), "{err}");
        assert!(!err.contains('\n'), "{err}");
    }
}
