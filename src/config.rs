//! Settings: built-in defaults < TOML file < `DECNET_*` environment, validated at load.
//!
//! Every value is parsed here, once, so a bad one stops the program at start with one
//! line naming the variable. Secrets are wrapped in [`Secret`] so they never print.

use std::{fmt, net::SocketAddr, path::PathBuf, time::Duration};

use config::{Config, Environment, File, FileFormat};

/// A value that must never reach a log line, an error or a response.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

/// One line naming the variable and what is wrong with its value.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(String);

impl ConfigError {
    fn invalid(var: &str, problem: impl fmt::Display) -> Self {
        Self(format!("invalid configuration: {var}: {problem}"))
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    Master,
    Agent,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogFormat {
    Plain,
    Json,
}

/// Worker and delivery tuning (`DECNET_WEBHOOK_*`).
#[derive(Clone, Debug)]
pub struct WebhookSettings {
    pub circuit_threshold: u32,
    pub retry_schedule: Vec<Duration>,
    pub timeout: Duration,
    pub reload_every: Duration,
    pub bus_reconnect: Duration,
    pub allow_private: bool,
    pub max_inflight_per_sub: usize,
    /// Events one subscription may queue: an extra cap beside the byte budgets.
    pub queue_per_sub: usize,
    /// Memory one subscription's queue may hold (event bodies, decoded payloads and
    /// bookkeeping, as estimated by `actors::schedule::queued_cost`).
    pub queue_bytes_per_sub: usize,
    /// Memory the queues of all subscriptions together may hold.
    pub queue_bytes_total: usize,
    pub create_per_minute: u32,
    /// Retention of the dead-letter store.
    pub dead_letter_days: u32,
    /// Retention of the delivery log.
    pub log_days: u32,
    /// Consume through JetStream durable consumers (nothing lost across restarts).
    pub durable: bool,
    /// The JetStream stream capturing DECNET's subjects (durable mode).
    pub stream: String,
    pub stream_subjects: Vec<String>,
    /// Copies of the stream a JetStream cluster keeps (3 survives a node's loss).
    pub stream_replicas: usize,
    /// How long a rotated-out secret keeps signing beside the new one.
    pub rotation_window: chrono::Duration,
    /// Wall-clock limit of one template render request (one event or one batch).
    pub template_timeout: Duration,
    /// Memory a template sandbox process may use beyond its size at start.
    pub template_memory_mib: u64,
    /// How long Splunk HEC may take to confirm that a request's events are indexed
    /// (indexer acknowledgement) before the request counts as failed and is resent.
    pub splunk_ack_timeout: Duration,
}

/// Limits on logins (`DECNET_API_LOGIN_*`).
#[derive(Clone, Debug)]
pub struct LoginSettings {
    /// Password checks (argon2, about 19 MiB each) that may run at once.
    pub concurrency: usize,
    /// Consecutive failures of one username before its back-off starts.
    pub user_failures: u32,
    /// Consecutive failures from one client address before its back-off starts.
    pub address_failures: u32,
    /// The first lock-out; each further failure doubles it.
    pub backoff: Duration,
    /// The longest lock-out; also how long a quiet key keeps its count.
    pub backoff_max: Duration,
}

#[derive(Clone, Debug)]
pub struct Settings {
    pub mode: Mode,
    pub database_url: Secret,
    pub nats_urls: Vec<String>,
    pub bus_enabled: bool,
    pub api_bind: SocketAddr,
    /// The hosts the API answers to (`Host` without port, as [`normalize_host`]
    /// spells them); empty: any.
    pub api_allowed_hosts: Vec<String>,
    /// Where `/metrics` is served on its own; `None`: on the API listener.
    pub metrics_bind: Option<SocketAddr>,
    /// Connections the API listener keeps open at once; `None`: derived from the
    /// process's open-file limit at start.
    pub api_max_connections: Option<usize>,
    /// How long a client may take to send a request head, and then its body (every
    /// HTTP listener).
    pub api_request_timeout: Duration,
    pub jwt_secret: Option<Secret>,
    pub jwt_exp_minutes: i64,
    pub login: LoginSettings,
    pub webhook: WebhookSettings,
    pub secret_key: Option<Secret>,
    pub log_format: LogFormat,
}

pub const DEFAULT_DATABASE_URL: &str = "sqlite://decnet.db?mode=rwc";
const DEFAULT_CONFIG_FILE: &str = "/etc/decnet/decnet.toml";
/// Shortest HS256 key accepted, in bytes.
pub const MIN_JWT_SECRET_LEN: usize = 32;

impl Settings {
    /// Load from the process environment and the optional TOML file.
    pub fn load(config_file: Option<PathBuf>) -> Result<Self, ConfigError> {
        let file = config_file
            .or_else(|| std::env::var_os("DECNET_CONFIG").map(PathBuf::from))
            .or_else(|| {
                let default = PathBuf::from(DEFAULT_CONFIG_FILE);
                default.is_file().then_some(default)
            });
        let mut builder = Config::builder();
        if let Some(path) = &file {
            if !path.is_file() {
                return Err(ConfigError(format!(
                    "invalid configuration: config file {} does not exist",
                    path.display()
                )));
            }
            builder = builder.add_source(File::from(path.as_path()).format(FileFormat::Toml));
        }
        let raw = builder
            .add_source(Environment::with_prefix("DECNET").try_parsing(false))
            .build()
            .map_err(|e| ConfigError(format!("invalid configuration: {e}")))?;
        Self::from_source(&Source(raw))
    }

    /// Build from explicit `key = value` pairs (keys as in the TOML file, e.g.
    /// `webhook_retry_schedule`), validated exactly like the environment; for embedding
    /// and tests, which must not share process-wide environment variables.
    pub fn from_pairs<K: AsRef<str>, V: AsRef<str>>(
        pairs: impl IntoIterator<Item = (K, V)>,
    ) -> Result<Self, ConfigError> {
        let mut builder = Config::builder();
        for (k, v) in pairs {
            builder = builder
                .set_override(k.as_ref(), v.as_ref())
                .map_err(|e| ConfigError(format!("invalid configuration: {e}")))?;
        }
        let raw = builder
            .build()
            .map_err(|e| ConfigError(format!("invalid configuration: {e}")))?;
        Self::from_source(&Source(raw))
    }

    fn from_source(src: &Source) -> Result<Self, ConfigError> {
        let mode = match src.string("mode")?.as_deref() {
            None | Some("master") => Mode::Master,
            Some("agent") => Mode::Agent,
            Some(other) => {
                return Err(ConfigError::invalid(
                    "DECNET_MODE",
                    format!("expected master or agent, got {other:?}"),
                ))
            }
        };
        let database_url = src
            .string("database_url")?
            .unwrap_or_else(|| DEFAULT_DATABASE_URL.to_owned());
        validate_database_url(&database_url)?;
        let nats_urls = parse_nats_urls(
            &src.string("nats_url")?
                .unwrap_or_else(|| "nats://127.0.0.1:4222".into()),
        )?;
        let api_bind = match src.string("api_bind")? {
            None => SocketAddr::from(([127, 0, 0, 1], 8000)),
            Some(s) => s.trim().parse().map_err(|_| {
                ConfigError::invalid("DECNET_API_BIND", format!("expected HOST:PORT, got {s:?}"))
            })?,
        };
        let api_allowed_hosts = parse_allowed_hosts(src.string("api_allowed_hosts")?)?;
        let metrics_bind = match src.string("metrics_bind")? {
            None => None,
            Some(s) => Some(s.trim().parse().map_err(|_| {
                ConfigError::invalid(
                    "DECNET_METRICS_BIND",
                    format!("expected HOST:PORT, got {s:?}"),
                )
            })?),
        };
        let jwt_secret = match src.string("jwt_secret")? {
            None => None,
            Some(s) if s.len() < MIN_JWT_SECRET_LEN => {
                return Err(ConfigError::invalid(
                    "DECNET_JWT_SECRET",
                    format!("must be at least {MIN_JWT_SECRET_LEN} bytes"),
                ))
            }
            Some(s) => Some(Secret(s)),
        };
        let secret_key = match src.string("secret_key")? {
            None => None,
            Some(s) => {
                decode_key(&s).ok_or_else(|| {
                    ConfigError::invalid(
                        "DECNET_SECRET_KEY",
                        "must be 32 bytes, written as 64 hex digits or base64",
                    )
                })?;
                Some(Secret(s))
            }
        };
        let log_format = match src.string("log_format")?.as_deref() {
            None | Some("plain") | Some("text") => LogFormat::Plain,
            Some("json") => LogFormat::Json,
            Some(other) => {
                return Err(ConfigError::invalid(
                    "DECNET_LOG_FORMAT",
                    format!("expected plain or json, got {other:?}"),
                ))
            }
        };
        let webhook = WebhookSettings {
            circuit_threshold: src.number("webhook_circuit_threshold", 5, 1, u32::MAX as u64)?
                as u32,
            retry_schedule: parse_schedule(
                &src.string("webhook_retry_schedule")?
                    .unwrap_or_else(|| "1,2,4".into()),
            )?,
            timeout: src.seconds("webhook_timeout_secs", 10.0)?,
            reload_every: src.seconds("webhook_reload_secs", 60.0)?,
            bus_reconnect: src.seconds("webhook_bus_reconnect_secs", 60.0)?,
            allow_private: src.boolean("webhook_allow_private", false)?,
            max_inflight_per_sub: src.number("webhook_max_inflight_per_sub", 32, 1, 10_000)?
                as usize,
            queue_per_sub: src.number("webhook_queue_per_sub", 1_000_000, 1, 10_000_000)? as usize,
            queue_bytes_per_sub: src.number(
                "webhook_queue_bytes_per_sub",
                64 << 20,
                64 << 10,
                1 << 40,
            )? as usize,
            queue_bytes_total: src.number(
                "webhook_queue_bytes_total",
                512 << 20,
                64 << 10,
                1 << 42,
            )? as usize,
            create_per_minute: src.number("webhook_create_per_minute", 20, 0, 1_000_000)? as u32,
            dead_letter_days: src.number("webhook_dead_letter_days", 7, 1, 3650)? as u32,
            log_days: src.number("webhook_log_days", 3, 1, 3650)? as u32,
            durable: src.boolean("webhook_durable", false)?,
            stream: parse_stream_name(src.string("webhook_stream")?)?,
            stream_subjects: parse_stream_subjects(src.string("webhook_stream_subjects")?)?,
            stream_replicas: src.number("webhook_stream_replicas", 1, 1, 5)? as usize,
            rotation_window: chrono::Duration::hours(src.number(
                "webhook_rotation_hours",
                24,
                1,
                8760,
            )? as i64),
            template_timeout: Duration::from_millis(src.number(
                "webhook_template_timeout_ms",
                1000,
                10,
                60_000,
            )?),
            template_memory_mib: src.number("webhook_template_memory_mib", 128, 16, 4096)?,
            splunk_ack_timeout: src.seconds("webhook_splunk_ack_timeout_secs", 300.0)?,
        };
        let login = LoginSettings {
            concurrency: src.number("api_login_concurrency", default_login_concurrency(), 1, 64)?
                as usize,
            user_failures: src.number("api_login_user_failures", 5, 1, 1_000)? as u32,
            address_failures: src.number("api_login_address_failures", 20, 1, 100_000)? as u32,
            backoff: src.seconds("api_login_backoff_secs", 1.0)?,
            backoff_max: src.seconds("api_login_backoff_max_secs", 900.0)?,
        };
        if login.backoff_max < login.backoff {
            return Err(ConfigError::invalid(
                "DECNET_API_LOGIN_BACKOFF_MAX_SECS",
                "must be at least DECNET_API_LOGIN_BACKOFF_SECS",
            ));
        }
        if webhook.bus_reconnect < Duration::from_secs(1) {
            return Err(ConfigError::invalid(
                "DECNET_WEBHOOK_BUS_RECONNECT_SECS",
                "must be at least 1",
            ));
        }
        Ok(Self {
            mode,
            database_url: Secret(database_url),
            nats_urls,
            bus_enabled: src.boolean("bus_enabled", true)?,
            api_bind,
            api_allowed_hosts,
            metrics_bind,
            api_max_connections: match src.string("api_max_connections")? {
                None => None,
                Some(_) => Some(src.number("api_max_connections", 0, 1, 1_000_000)? as usize),
            },
            api_request_timeout: src.seconds("api_request_timeout_secs", 5.0)?,
            jwt_secret,
            jwt_exp_minutes: src.number("jwt_exp_minutes", 240, 1, 525_600)? as i64,
            login,
            webhook,
            secret_key,
            log_format,
        })
    }

    /// The database URL with any password replaced, for log lines.
    pub fn database_url_redacted(&self) -> String {
        redact_url(self.database_url.expose())
    }

    /// `webhook`, `api` and `serve` run on the master only.
    pub fn require_master(&self, command: &str) -> Result<(), ConfigError> {
        match self.mode {
            Mode::Master => Ok(()),
            Mode::Agent => Err(ConfigError(format!(
                "`decnet {command}` runs on the master only, and DECNET_MODE is agent"
            ))),
        }
    }

    /// Where `serve` keeps a generated JWT key: beside the SQLite file, else the working dir.
    pub fn generated_jwt_secret_path(&self) -> PathBuf {
        sqlite_file(self.database_url.expose())
            .and_then(|p| p.parent().map(|d| d.join(".decnet-jwt-secret")))
            .unwrap_or_else(|| PathBuf::from(".decnet-jwt-secret"))
    }
}

/// One password check per core, at most 4: more would not make logins, which are rare,
/// any faster, and each holds about 19 MiB while it runs.
fn default_login_concurrency() -> u64 {
    std::thread::available_parallelism().map_or(1, |n| n.get().min(4) as u64)
}

/// The file of a `sqlite://` URL, if it names one.
fn sqlite_file(url: &str) -> Option<PathBuf> {
    let rest = url.strip_prefix("sqlite://")?;
    let path = rest.split('?').next().unwrap_or_default();
    if path.is_empty() || path == ":memory:" {
        return None;
    }
    let path = PathBuf::from(path);
    Some(if path.parent().is_some_and(|p| p.as_os_str().is_empty()) {
        PathBuf::from(".").join(path)
    } else {
        path
    })
}

/// Decode a 32-byte key written as hex or base64 (standard or URL-safe).
pub fn decode_key(s: &str) -> Option<[u8; 32]> {
    use base64::Engine as _;
    let s = s.trim();
    let bytes = hex::decode(s)
        .ok()
        .or_else(|| base64::engine::general_purpose::STANDARD.decode(s).ok())
        .or_else(|| base64::engine::general_purpose::URL_SAFE.decode(s).ok())
        .or_else(|| {
            base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(s)
                .ok()
        })?;
    bytes.try_into().ok()
}

fn validate_database_url(url: &str) -> Result<(), ConfigError> {
    let scheme = url.split(':').next().unwrap_or_default();
    let known = match scheme {
        "sqlite" => true,
        "postgres" | "postgresql" | "mysql" => url.contains("://"),
        _ => false,
    };
    if !known {
        return Err(ConfigError::invalid(
            "DECNET_DATABASE_URL",
            format!(
                "expected sqlite://… or postgres://…, got {:?}",
                redact_url(url)
            ),
        ));
    }
    if scheme != "sqlite" {
        url::Url::parse(url).map_err(|e| {
            ConfigError::invalid("DECNET_DATABASE_URL", format!("malformed URL: {e}"))
        })?;
    }
    Ok(())
}

/// Replace the password of a URL, if it carries one.
pub fn redact_url(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut parsed) if parsed.password().is_some() => {
            let _ = parsed.set_password(Some("***"));
            parsed.to_string()
        }
        Ok(_) => url.to_owned(),
        Err(_) => match url.rfind('@') {
            Some(at) => format!("***{}", &url[at..]),
            None => url.to_owned(),
        },
    }
}

fn parse_nats_urls(value: &str) -> Result<Vec<String>, ConfigError> {
    let urls: Vec<String> = value
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect();
    if urls.is_empty() {
        return Err(ConfigError::invalid("DECNET_NATS_URL", "no server given"));
    }
    for u in &urls {
        let parsed = url::Url::parse(u).map_err(|e| {
            ConfigError::invalid(
                "DECNET_NATS_URL",
                format!("malformed URL {:?}: {e}", redact_url(u)),
            )
        })?;
        if !matches!(parsed.scheme(), "nats" | "tls" | "ws" | "wss") || parsed.host().is_none() {
            return Err(ConfigError::invalid(
                "DECNET_NATS_URL",
                format!("expected nats://HOST:PORT, got {:?}", redact_url(u)),
            ));
        }
    }
    Ok(urls)
}

/// `DECNET_API_ALLOWED_HOSTS`: comma-separated host names or IP addresses, no ports.
fn parse_allowed_hosts(value: Option<String>) -> Result<Vec<String>, ConfigError> {
    let Some(value) = value else {
        return Ok(Vec::new());
    };
    let hosts = value
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|h| {
            normalize_host(h).ok_or_else(|| {
                ConfigError::invalid(
                    "DECNET_API_ALLOWED_HOSTS",
                    format!("expected host names or IP addresses without a port, got {h:?}"),
                )
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    if hosts.is_empty() {
        return Err(ConfigError::invalid(
            "DECNET_API_ALLOWED_HOSTS",
            "no host given",
        ));
    }
    Ok(hosts)
}

/// A host name or IP address (IPv6 with or without brackets) in one spelling: names
/// in ASCII lower case without a trailing dot, addresses as Rust prints them. `None`
/// when it is neither (a port, a wildcard, a path, spaces).
pub fn normalize_host(host: &str) -> Option<String> {
    let bare = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    if let Ok(ip) = bare.parse::<std::net::IpAddr>() {
        return Some(ip.to_string());
    }
    let name = host.strip_suffix('.').unwrap_or(host);
    let label_ok = |l: &str| {
        (1..=63).contains(&l.len())
            && l.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    };
    (name.len() <= 253 && name.split('.').all(label_ok)).then(|| name.to_ascii_lowercase())
}

fn parse_stream_name(value: Option<String>) -> Result<String, ConfigError> {
    let name = value.unwrap_or_else(|| "DECNET_EVENTS".into());
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if ok {
        Ok(name)
    } else {
        Err(ConfigError::invalid(
            "DECNET_WEBHOOK_STREAM",
            format!("expected letters, digits, '_' or '-' (≤ 64), got {name:?}"),
        ))
    }
}

fn parse_stream_subjects(value: Option<String>) -> Result<Vec<String>, ConfigError> {
    let value = value.unwrap_or_else(|| "attacker.>,decky.>,system.>".into());
    let subjects: Vec<String> = value
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect();
    if subjects.is_empty() {
        return Err(ConfigError::invalid(
            "DECNET_WEBHOOK_STREAM_SUBJECTS",
            "no subject given",
        ));
    }
    for s in &subjects {
        crate::domain::SubjectPattern::parse(s)
            .map_err(|e| ConfigError::invalid("DECNET_WEBHOOK_STREAM_SUBJECTS", e))?;
    }
    Ok(subjects)
}

/// `1,2,4` → delays in seconds between attempts; fractions allowed; empty = one attempt.
fn parse_schedule(value: &str) -> Result<Vec<Duration>, ConfigError> {
    value
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| {
            s.parse::<f64>()
                .ok()
                .filter(|v| v.is_finite() && (0.0..=3600.0).contains(v))
                .map(Duration::from_secs_f64)
                .ok_or_else(|| {
                    ConfigError::invalid(
                        "DECNET_WEBHOOK_RETRY_SCHEDULE",
                        format!("expected comma-separated seconds (0–3600), got {s:?}"),
                    )
                })
        })
        .collect()
}

/// Raw layered values; each accessor names the environment variable in its errors.
struct Source(Config);

impl Source {
    fn var(key: &str) -> String {
        format!("DECNET_{}", key.to_ascii_uppercase())
    }

    fn string(&self, key: &str) -> Result<Option<String>, ConfigError> {
        match self.0.get_string(key) {
            Ok(s) if s.trim().is_empty() && key != "webhook_retry_schedule" => Ok(None),
            Ok(s) => Ok(Some(s)),
            Err(config::ConfigError::NotFound(_)) => Ok(None),
            Err(_) => Err(ConfigError::invalid(&Self::var(key), "expected a string")),
        }
    }

    fn number(&self, key: &str, default: u64, min: u64, max: u64) -> Result<u64, ConfigError> {
        let Some(s) = self.string(key)? else {
            return Ok(default);
        };
        match s.trim().parse::<u64>() {
            Ok(v) if (min..=max).contains(&v) => Ok(v),
            Ok(v) => Err(ConfigError::invalid(
                &Self::var(key),
                format!("must be between {min} and {max}, got {v}"),
            )),
            Err(_) => Err(ConfigError::invalid(
                &Self::var(key),
                format!("expected a whole number, got {s:?}"),
            )),
        }
    }

    fn seconds(&self, key: &str, default: f64) -> Result<Duration, ConfigError> {
        let Some(s) = self.string(key)? else {
            return Ok(Duration::from_secs_f64(default));
        };
        s.trim()
            .parse::<f64>()
            .ok()
            .filter(|v| v.is_finite() && *v > 0.0 && *v <= 86_400.0)
            .map(Duration::from_secs_f64)
            .ok_or_else(|| {
                ConfigError::invalid(
                    &Self::var(key),
                    format!("expected a number of seconds > 0, got {s:?}"),
                )
            })
    }

    fn boolean(&self, key: &str, default: bool) -> Result<bool, ConfigError> {
        let Some(s) = self.string(key)? else {
            return Ok(default);
        };
        match s.trim().to_ascii_lowercase().as_str() {
            "true" | "1" | "yes" | "on" => Ok(true),
            "false" | "0" | "no" | "off" => Ok(false),
            _ => Err(ConfigError::invalid(
                &Self::var(key),
                format!("expected true or false, got {s:?}"),
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(pairs: &[(&str, &str)]) -> Result<Settings, ConfigError> {
        Settings::from_pairs(pairs.iter().copied())
    }

    #[test]
    fn defaults_match_the_spec() {
        let s = load(&[]).unwrap();
        assert_eq!(s.mode, Mode::Master);
        assert_eq!(s.database_url.expose(), DEFAULT_DATABASE_URL);
        assert_eq!(s.nats_urls, vec!["nats://127.0.0.1:4222"]);
        assert!(s.bus_enabled);
        assert_eq!(s.api_bind.to_string(), "127.0.0.1:8000");
        assert_eq!(s.metrics_bind, None);
        assert_eq!(s.api_max_connections, None);
        assert_eq!(s.api_request_timeout, Duration::from_secs(5));
        assert_eq!(s.jwt_exp_minutes, 240);
        assert_eq!(s.webhook.circuit_threshold, 5);
        assert_eq!(
            s.webhook.retry_schedule,
            [1, 2, 4].map(Duration::from_secs).to_vec()
        );
        assert_eq!(s.webhook.timeout, Duration::from_secs(10));
        assert_eq!(s.webhook.splunk_ack_timeout, Duration::from_secs(300));
        assert_eq!(s.webhook.max_inflight_per_sub, 32);
        assert_eq!(s.webhook.queue_per_sub, 1_000_000);
        assert_eq!(s.webhook.queue_bytes_per_sub, 64 << 20);
        assert_eq!(s.webhook.queue_bytes_total, 512 << 20);
        assert_eq!(s.webhook.create_per_minute, 20);
        assert!(!s.webhook.allow_private);
        assert_eq!(s.webhook.rotation_window, chrono::Duration::hours(24));
        assert!(s.secret_key.is_none());
        assert!(s.login.concurrency >= 1);
        assert_eq!((s.login.user_failures, s.login.address_failures), (5, 20));
        assert_eq!(s.login.backoff, Duration::from_secs(1));
        assert_eq!(s.login.backoff_max, Duration::from_secs(900));
    }

    #[test]
    fn rotation_window_and_secret_key_are_read() {
        let s = load(&[
            ("webhook_rotation_hours", "2"),
            ("secret_key", &"ab".repeat(32)),
        ])
        .unwrap();
        assert_eq!(s.webhook.rotation_window, chrono::Duration::hours(2));
        assert_eq!(
            s.secret_key.as_ref().and_then(|k| decode_key(k.expose())),
            Some([0xab; 32])
        );
    }

    #[test]
    fn bad_values_name_the_variable() {
        for (key, value, var) in [
            (
                "webhook_circuit_threshold",
                "0",
                "DECNET_WEBHOOK_CIRCUIT_THRESHOLD",
            ),
            (
                "webhook_circuit_threshold",
                "five",
                "DECNET_WEBHOOK_CIRCUIT_THRESHOLD",
            ),
            ("webhook_timeout_secs", "-1", "DECNET_WEBHOOK_TIMEOUT_SECS"),
            (
                "webhook_splunk_ack_timeout_secs",
                "0",
                "DECNET_WEBHOOK_SPLUNK_ACK_TIMEOUT_SECS",
            ),
            (
                "webhook_queue_bytes_per_sub",
                "1000",
                "DECNET_WEBHOOK_QUEUE_BYTES_PER_SUB",
            ),
            (
                "webhook_queue_bytes_total",
                "lots",
                "DECNET_WEBHOOK_QUEUE_BYTES_TOTAL",
            ),
            (
                "webhook_retry_schedule",
                "1,x",
                "DECNET_WEBHOOK_RETRY_SCHEDULE",
            ),
            ("nats_url", "not a url", "DECNET_NATS_URL"),
            ("database_url", "mongodb://x", "DECNET_DATABASE_URL"),
            ("api_bind", "localhost", "DECNET_API_BIND"),
            ("metrics_bind", "localhost", "DECNET_METRICS_BIND"),
            (
                "api_allowed_hosts",
                "decnet.example:8000",
                "DECNET_API_ALLOWED_HOSTS",
            ),
            ("api_allowed_hosts", "*.example", "DECNET_API_ALLOWED_HOSTS"),
            ("api_allowed_hosts", " , ", "DECNET_API_ALLOWED_HOSTS"),
            (
                "api_allowed_hosts",
                "http://decnet.example",
                "DECNET_API_ALLOWED_HOSTS",
            ),
            ("metrics_bind", "127.0.0.1:99999", "DECNET_METRICS_BIND"),
            ("api_max_connections", "0", "DECNET_API_MAX_CONNECTIONS"),
            ("api_max_connections", "many", "DECNET_API_MAX_CONNECTIONS"),
            (
                "api_request_timeout_secs",
                "0",
                "DECNET_API_REQUEST_TIMEOUT_SECS",
            ),
            ("jwt_secret", "short", "DECNET_JWT_SECRET"),
            (
                "webhook_allow_private",
                "maybe",
                "DECNET_WEBHOOK_ALLOW_PRIVATE",
            ),
            ("mode", "worker", "DECNET_MODE"),
            ("secret_key", "abc", "DECNET_SECRET_KEY"),
            (
                "webhook_rotation_hours",
                "0",
                "DECNET_WEBHOOK_ROTATION_HOURS",
            ),
            (
                "webhook_rotation_hours",
                "1.5",
                "DECNET_WEBHOOK_ROTATION_HOURS",
            ),
            ("api_login_concurrency", "0", "DECNET_API_LOGIN_CONCURRENCY"),
            (
                "api_login_concurrency",
                "65",
                "DECNET_API_LOGIN_CONCURRENCY",
            ),
            (
                "api_login_user_failures",
                "0",
                "DECNET_API_LOGIN_USER_FAILURES",
            ),
            (
                "api_login_address_failures",
                "many",
                "DECNET_API_LOGIN_ADDRESS_FAILURES",
            ),
            (
                "api_login_backoff_secs",
                "0",
                "DECNET_API_LOGIN_BACKOFF_SECS",
            ),
            (
                "api_login_backoff_max_secs",
                "0.5",
                "DECNET_API_LOGIN_BACKOFF_MAX_SECS",
            ),
        ] {
            let err = load(&[(key, value)]).unwrap_err().to_string();
            assert!(err.contains(var), "{key}={value}: {err}");
            assert!(!err.contains('\n'));
        }
    }

    #[test]
    fn template_limits_have_defaults_and_bounds() {
        let s = load(&[]).unwrap();
        assert_eq!(s.webhook.template_timeout, Duration::from_millis(1000));
        assert_eq!(s.webhook.template_memory_mib, 128);
        let s = load(&[
            ("webhook_template_timeout_ms", "250"),
            ("webhook_template_memory_mib", "64"),
        ])
        .unwrap();
        assert_eq!(s.webhook.template_timeout, Duration::from_millis(250));
        assert_eq!(s.webhook.template_memory_mib, 64);
        for (key, value, var) in [
            (
                "webhook_template_timeout_ms",
                "0",
                "DECNET_WEBHOOK_TEMPLATE_TIMEOUT_MS",
            ),
            (
                "webhook_template_timeout_ms",
                "60001",
                "DECNET_WEBHOOK_TEMPLATE_TIMEOUT_MS",
            ),
            (
                "webhook_template_memory_mib",
                "8",
                "DECNET_WEBHOOK_TEMPLATE_MEMORY_MIB",
            ),
            (
                "webhook_template_memory_mib",
                "lots",
                "DECNET_WEBHOOK_TEMPLATE_MEMORY_MIB",
            ),
        ] {
            let err = load(&[(key, value)]).unwrap_err().to_string();
            assert!(err.contains(var), "{key}={value}: {err}");
        }
    }

    #[test]
    fn empty_schedule_means_one_attempt() {
        let s = load(&[("webhook_retry_schedule", "")]).unwrap();
        assert!(s.webhook.retry_schedule.is_empty());
        let s = load(&[("webhook_retry_schedule", "0.05, 0.1")]).unwrap();
        assert_eq!(s.webhook.retry_schedule.len(), 2);
    }

    #[test]
    fn connection_limits_are_read() {
        let s = load(&[
            ("api_max_connections", "300"),
            ("api_request_timeout_secs", "2.5"),
        ])
        .unwrap();
        assert_eq!(s.api_max_connections, Some(300));
        assert_eq!(s.api_request_timeout, Duration::from_millis(2500));
    }

    #[test]
    fn metrics_bind_is_a_socket_address() {
        let s = load(&[("metrics_bind", " 0.0.0.0:9464 ")]).unwrap();
        assert_eq!(s.metrics_bind, Some(SocketAddr::from(([0, 0, 0, 0], 9464))));
        let s = load(&[("metrics_bind", "[::1]:9464")]).unwrap();
        assert_eq!(s.metrics_bind.map(|a| a.port()), Some(9464));
    }

    #[test]
    fn allowed_hosts_are_normalized() {
        assert!(load(&[]).unwrap().api_allowed_hosts.is_empty());
        let s = load(&[(
            "api_allowed_hosts",
            " Decnet.Example. , 127.0.0.1,[::1], 0:0::2 ,",
        )])
        .unwrap();
        assert_eq!(
            s.api_allowed_hosts,
            ["decnet.example", "127.0.0.1", "::1", "::2"]
        );
        assert_eq!(normalize_host("[::1]"), Some("::1".into()));
        assert_eq!(normalize_host("a..b"), None);
        assert_eq!(normalize_host("a b"), None);
        assert_eq!(normalize_host(""), None);
    }

    #[test]
    fn secrets_never_print() {
        let s = load(&[
            ("jwt_secret", "0123456789abcdef0123456789abcdef-jwt"),
            ("database_url", "postgres://decnet:hunter2@db/decnet"),
        ])
        .unwrap();
        let debug = format!("{s:?}");
        assert!(!debug.contains("0123456789abcdef"));
        assert!(!debug.contains("hunter2"));
        assert!(!s.database_url_redacted().contains("hunter2"));
        let err = load(&[("database_url", "mongodb://u:hunter2@x")])
            .unwrap_err()
            .to_string();
        assert!(!err.contains("hunter2"), "{err}");
    }

    #[test]
    fn jwt_file_sits_beside_the_sqlite_database() {
        let s = load(&[("database_url", "sqlite:///var/lib/decnet/d.db?mode=rwc")]).unwrap();
        assert_eq!(
            s.generated_jwt_secret_path(),
            PathBuf::from("/var/lib/decnet/.decnet-jwt-secret")
        );
        let s = load(&[]).unwrap();
        assert_eq!(
            s.generated_jwt_secret_path(),
            PathBuf::from("./.decnet-jwt-secret")
        );
    }
}
