//! The `decnet` command line.

use std::{io::IsTerminal, path::PathBuf, process::ExitCode};

use clap::{Parser, Subcommand, ValueEnum};

use crate::{
    auth,
    config::Settings,
    db,
    startup::{check_secret_key, connect, Application, Components, StartupError},
    telemetry,
};

#[derive(Parser, Debug)]
#[command(
    name = "decnet",
    version,
    about = "DECNET webhook egress: bus events to signed HTTP deliveries"
)]
pub struct Cli {
    /// TOML configuration file (else DECNET_CONFIG, else /etc/decnet/decnet.toml if present).
    #[arg(long, global = true, value_name = "PATH")]
    pub config: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// API, web UI and worker in one process.
    Serve,
    /// The HTTP admin API and web UI only.
    Api,
    /// The webhook worker only.
    Webhook,
    /// Apply database migrations and exit.
    Migrate,
    /// Manage users of the admin API.
    #[command(subcommand)]
    User(UserCommand),
    /// Render the systemd units into a folder.
    Init(crate::units::InitArgs),
    /// Subscription secrets at rest (DECNET_SECRET_KEY).
    #[command(subcommand)]
    Secrets(SecretsCommand),
}

#[derive(Subcommand, Debug)]
pub enum SecretsCommand {
    /// Encrypt every plaintext (or earlier-format) subscription secret in place with DECNET_SECRET_KEY.
    Encrypt,
}

#[derive(Subcommand, Debug)]
pub enum UserCommand {
    /// Create a user.
    Add {
        name: String,
        #[arg(long, value_enum)]
        role: RoleArg,
        /// Read the password from the first line of stdin instead of a prompt.
        #[arg(long)]
        password_stdin: bool,
    },
    /// List users.
    List,
    /// Change a user's password; its tokens stop working.
    Passwd {
        name: String,
        #[arg(long)]
        password_stdin: bool,
    },
    /// Refuse a user's logins and tokens, keeping the user.
    Disable { name: String },
    /// Let a disabled user sign in again.
    Enable { name: String },
    /// Delete a user; its tokens stop working.
    Delete { name: String },
    /// Change a user's role; its tokens stop working.
    Role {
        name: String,
        #[arg(value_enum)]
        role: RoleArg,
    },
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum RoleArg {
    Admin,
    Viewer,
}

impl From<RoleArg> for auth::Role {
    fn from(r: RoleArg) -> Self {
        match r {
            RoleArg::Admin => auth::Role::Admin,
            RoleArg::Viewer => auth::Role::Viewer,
        }
    }
}

pub fn run() -> ExitCode {
    crate::memory::configure_allocator();
    // The template sandbox is this binary started by itself, before anything else.
    if let Some(code) = crate::shape::sandbox::child_entry() {
        return code;
    }
    let cli = Cli::parse();
    // `init` only renders files: it must work whatever the environment holds.
    if let Command::Init(args) = &cli.command {
        return match crate::units::run(args) {
            Ok(written) => {
                for w in written {
                    println!("{w}");
                }
                ExitCode::SUCCESS
            }
            Err(e) => fail(StartupError::Usage(e.to_string())),
        };
    }
    // Before anything is created: the SQLite file holds password hashes (and, without
    // DECNET_SECRET_KEY, plaintext secrets), so no file of ours is readable by others.
    // `init` above keeps the caller's mask: unit files are meant to be world-readable.
    // SAFETY: umask only sets this process's file-creation mask; no memory is involved.
    unsafe {
        libc::umask(0o077);
    }
    let settings = match Settings::load(cli.config.clone()) {
        Ok(s) => s,
        Err(e) => return fail(StartupError::from(e)),
    };
    let one_shot = matches!(cli.command, Command::User(_) | Command::Secrets(_));
    telemetry::init(settings.log_format, one_shot);
    match dispatch(cli.command, settings) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => fail(e),
    }
}

fn fail(e: StartupError) -> ExitCode {
    eprintln!("decnet: {e}");
    match e {
        StartupError::Usage(_) => ExitCode::from(2),
        StartupError::Runtime(_) => ExitCode::from(1),
    }
}

fn dispatch(command: Command, settings: Settings) -> Result<(), StartupError> {
    let system = actix_rt::System::new();
    let result = system.block_on(async move {
        match command {
            Command::Serve => run_app(settings, "serve", true, true).await,
            Command::Api => run_app(settings, "api", true, false).await,
            Command::Webhook => run_app(settings, "webhook", false, true).await,
            Command::Migrate => {
                connect(&settings).await?;
                println!("migrations applied");
                Ok(())
            }
            Command::User(cmd) => user_command(cmd, &settings).await,
            Command::Secrets(SecretsCommand::Encrypt) => encrypt_secrets(&settings).await,
            Command::Init(_) => Ok(()),
        }
    });
    // Everything that matters is flushed by now; tearing the runtime down would drop
    // pooled database connections outside it (a panic in their destructor).
    std::mem::forget(system);
    result
}

/// Build and run the long-running parts until a signal stops them.
async fn run_app(
    settings: Settings,
    command: &str,
    api: bool,
    worker: bool,
) -> Result<(), StartupError> {
    settings.require_master(command)?;
    // `serve` is the quick start: it keeps a generated key rather than refuse to start.
    let jwt = if api && worker && settings.jwt_secret.is_none() {
        Some(generated_jwt_secret(&settings.generated_jwt_secret_path())?)
    } else {
        None
    };
    tracing::info!(
        command,
        version = env!("CARGO_PKG_VERSION"),
        database = %settings.database_url_redacted(),
        bus = %settings.nats_urls.join(","),
        "starting"
    );
    let app = Application::build(settings, Components { api, worker }, jwt, None).await?;
    app.run_until_stopped().await
}

/// Read the key kept beside the database, or create it (mode 0600). A key file
/// another user owns, or that group or others may read or write, is refused: whoever
/// planted or read it could sign admin tokens.
fn generated_jwt_secret(path: &std::path::Path) -> Result<crate::config::Secret, StartupError> {
    use std::io::{Read, Write};
    use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
    match std::fs::File::open(path) {
        Ok(mut file) => {
            // The checks read the opened file, so it cannot be swapped after them.
            let meta = file.metadata().map_err(|e| {
                StartupError::Runtime(format!("cannot read {}: {e}", path.display()))
            })?;
            // SAFETY: geteuid has no preconditions and cannot fail.
            let me = unsafe { libc::geteuid() };
            if let Some(why) = untrusted_key_file(meta.uid(), meta.mode(), me) {
                return Err(StartupError::Usage(format!("{}: {why}", path.display())));
            }
            let mut existing = String::new();
            file.read_to_string(&mut existing).map_err(|e| {
                StartupError::Runtime(format!("cannot read {}: {e}", path.display()))
            })?;
            let key = existing.trim().to_owned();
            if key.len() >= crate::config::MIN_JWT_SECRET_LEN {
                return Ok(crate::config::Secret::new(key));
            }
            return Err(StartupError::Usage(format!(
                "{} holds a JWT key shorter than {} bytes; delete it or set DECNET_JWT_SECRET",
                path.display(),
                crate::config::MIN_JWT_SECRET_LEN
            )));
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => {
            return Err(StartupError::Runtime(format!(
                "cannot read {}: {e}",
                path.display()
            )))
        }
    }
    let key = {
        use base64::Engine as _;
        use rand::RngCore as _;
        let mut bytes = [0u8; 48];
        rand::rngs::OsRng.fill_bytes(&mut bytes);
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    };
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .and_then(|mut f| f.write_all(key.as_bytes()).map(|_| f))
        .map_err(|e| {
            StartupError::Runtime(format!(
                "cannot write the JWT key file {}: {e}",
                path.display()
            ))
        })?;
    let _ = file.flush();
    tracing::info!(path = %path.display(), "generated a JWT key (set DECNET_JWT_SECRET to choose one)");
    Ok(crate::config::Secret::new(key))
}

/// Why a JWT key file owned by `owner` with `mode` must not be trusted by user `me`.
fn untrusted_key_file(owner: u32, mode: u32, me: u32) -> Option<String> {
    if owner != me {
        return Some(format!(
            "the JWT key file is owned by uid {owner}, not by the user running decnet (uid {me}); \
             delete it or set DECNET_JWT_SECRET"
        ));
    }
    if mode & 0o077 != 0 {
        return Some(format!(
            "the JWT key file is open to group or others (mode {:04o}); \
             run `chmod 600` on it, delete it, or set DECNET_JWT_SECRET",
            mode & 0o7777
        ));
    }
    None
}

/// `decnet secrets encrypt`: seal plaintext and earlier-format secrets in place; prints how many rows.
async fn encrypt_secrets(settings: &Settings) -> Result<(), StartupError> {
    let store = crate::secrets::SecretStore::from_settings(settings);
    if !store.encrypts() {
        return Err(StartupError::Usage(
            "DECNET_SECRET_KEY is not set; it is the key `decnet secrets encrypt` encrypts with"
                .into(),
        ));
    }
    one_shot(settings, |db| async move {
        check_secret_key(&db, &store).await?;
        let converted = crate::secrets::seal_rows_in_current_format(&db, &store)
            .await
            .map_err(|e| {
                StartupError::Runtime(format!(
                    "database error: {}",
                    crate::error::redact_db_error(&e)
                ))
            })?;
        println!("encrypted the secrets of {converted} subscription(s)");
        Ok(())
    })
    .await
}

/// Run a one-shot command (one that prints its answer and exits) on a connected and
/// migrated database. The migrations it applied are worth one line on stderr, after
/// the answer and only if it succeeded (a failure is one line of its own); the
/// migrator's progress lines are filtered out (`telemetry::init`).
async fn one_shot<F, Fut>(settings: &Settings, command: F) -> Result<(), StartupError>
where
    F: FnOnce(sea_orm::DatabaseConnection) -> Fut,
    Fut: std::future::Future<Output = Result<(), StartupError>>,
{
    let (db, applied) = crate::startup::connect_counting_migrations(settings).await?;
    command(db).await?;
    if applied > 0 {
        eprintln!("decnet: applied {applied} database migration(s)");
    }
    Ok(())
}

async fn user_command(cmd: UserCommand, settings: &Settings) -> Result<(), StartupError> {
    one_shot(settings, |db| run_user_command(cmd, db)).await
}

async fn run_user_command(
    cmd: UserCommand,
    db: sea_orm::DatabaseConnection,
) -> Result<(), StartupError> {
    match cmd {
        UserCommand::Add {
            name,
            role,
            password_stdin,
        } => {
            validate_username(&name)?;
            if db::users::find_by_username(&db, &name)
                .await
                .map_err(db_error)?
                .is_some()
            {
                return Err(StartupError::Usage(format!("user {name:?} already exists")));
            }
            let password = read_password(password_stdin)?;
            let hash =
                auth::hash_password(&password).map_err(|e| StartupError::Usage(e.to_string()))?;
            let role = auth::Role::from(role);
            db::users::insert(&db, &name, hash, role.as_str())
                .await
                .map_err(db_error)?;
            println!("user {name} created with role {}", role.as_str());
            Ok(())
        }
        UserCommand::List => {
            for u in db::users::list(&db).await.map_err(db_error)? {
                println!(
                    "{}\t{}\t{}\t{}",
                    u.username,
                    u.role,
                    u.created_at.format("%Y-%m-%dT%H:%M:%SZ"),
                    if u.disabled { "disabled" } else { "enabled" }
                );
            }
            Ok(())
        }
        UserCommand::Passwd {
            name,
            password_stdin,
        } => {
            existing_user(&db, &name).await?;
            let password = read_password(password_stdin)?;
            let hash =
                auth::hash_password(&password).map_err(|e| StartupError::Usage(e.to_string()))?;
            db::users::set_password_hash(&db, &name, hash)
                .await
                .map_err(db_error)?;
            println!("password of {name} changed; its sessions are ended");
            Ok(())
        }
        UserCommand::Disable { name } => {
            let user = existing_user(&db, &name).await?;
            keep_an_admin(&db, &user, "disable").await?;
            db::users::set_disabled(&db, &name, true)
                .await
                .map_err(db_error)?;
            println!("user {name} disabled; its sessions are ended");
            Ok(())
        }
        UserCommand::Enable { name } => {
            existing_user(&db, &name).await?;
            db::users::set_disabled(&db, &name, false)
                .await
                .map_err(db_error)?;
            println!("user {name} enabled");
            Ok(())
        }
        UserCommand::Delete { name } => {
            let user = existing_user(&db, &name).await?;
            keep_an_admin(&db, &user, "delete").await?;
            db::users::delete(&db, &name).await.map_err(db_error)?;
            println!("user {name} deleted");
            Ok(())
        }
        UserCommand::Role { name, role } => {
            let user = existing_user(&db, &name).await?;
            let role = auth::Role::from(role);
            if role != auth::Role::Admin {
                keep_an_admin(&db, &user, "demote").await?;
            }
            db::users::set_role(&db, &name, role.as_str())
                .await
                .map_err(db_error)?;
            println!(
                "role of {name} set to {}; its sessions are ended",
                role.as_str()
            );
            Ok(())
        }
    }
}

fn db_error(e: sea_orm::DbErr) -> StartupError {
    StartupError::Runtime(format!(
        "database error: {}",
        crate::error::redact_db_error(&e)
    ))
}

async fn existing_user(
    db: &sea_orm::DatabaseConnection,
    name: &str,
) -> Result<entity::user::Model, StartupError> {
    db::users::find_by_username(db, name)
        .await
        .map_err(db_error)?
        .ok_or_else(|| StartupError::Usage(format!("no user named {name:?}")))
}

/// Refuse to leave no enabled admin: nobody could manage subscriptions, nor undo it
/// through the API.
async fn keep_an_admin(
    db: &sea_orm::DatabaseConnection,
    user: &entity::user::Model,
    what: &str,
) -> Result<(), StartupError> {
    if db::users::is_last_enabled_admin(db, user)
        .await
        .map_err(db_error)?
    {
        return Err(StartupError::Usage(format!(
            "refusing to {what} {:?}, the last enabled admin; make another user admin first",
            user.username
        )));
    }
    Ok(())
}

fn validate_username(name: &str) -> Result<(), StartupError> {
    let ok = (1..=auth::MAX_USERNAME_CHARS).contains(&name.chars().count())
        && !name.chars().any(|c| c.is_whitespace() || c.is_control())
        && crate::domain::text::format_char(name).is_none();
    if ok {
        Ok(())
    } else {
        Err(StartupError::Usage(
            "user name must be 1–64 characters without spaces or invisible formatting characters"
                .into(),
        ))
    }
}

/// The password: first line of stdin with `--password-stdin`, else asked twice on a terminal.
fn read_password(from_stdin: bool) -> Result<String, StartupError> {
    if from_stdin {
        let mut line = String::new();
        std::io::stdin()
            .read_line(&mut line)
            .map_err(|e| StartupError::Runtime(format!("cannot read stdin: {e}")))?;
        let password = line.trim_end_matches(['\r', '\n']).to_owned();
        if password.is_empty() {
            return Err(StartupError::Usage("password is empty".into()));
        }
        return Ok(password);
    }
    if !std::io::stdin().is_terminal() {
        return Err(StartupError::Usage(
            "no terminal to ask the password on; use --password-stdin".into(),
        ));
    }
    let first = rpassword::prompt_password("Password: ")
        .map_err(|e| StartupError::Runtime(format!("cannot read password: {e}")))?;
    let second = rpassword::prompt_password("Again: ")
        .map_err(|e| StartupError::Runtime(format!("cannot read password: {e}")))?;
    if first != second {
        return Err(StartupError::Usage("passwords do not match".into()));
    }
    if first.is_empty() {
        return Err(StartupError::Usage("password is empty".into()));
    }
    Ok(first)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_file_must_be_private_to_its_user() {
        assert_eq!(untrusted_key_file(1000, 0o100600, 1000), None);
        assert_eq!(untrusted_key_file(1000, 0o100400, 1000), None);
        let other = untrusted_key_file(1001, 0o100600, 1000).unwrap();
        assert!(other.contains("uid 1001"), "{other}");
        for mode in [0o100644, 0o100640, 0o100604, 0o100620, 0o100602] {
            let open = untrusted_key_file(1000, mode, 1000).unwrap();
            assert!(open.contains(&format!("{:04o}", mode & 0o7777)), "{open}");
        }
    }

    #[test]
    fn user_names_refuse_invisible_formatting_characters() {
        assert!(validate_username("alice").is_ok());
        assert!(validate_username("ad\u{202E}nim").is_err());
        assert!(validate_username("alice\u{200B}").is_err());
    }
}
