//! Configuration: the TOML file of section 6 of the contract, its defaults, and
//! strict validation.
//!
//! sluice runs with no file at all (the mock on 127.0.0.1:7800). A file is
//! parsed strictly: an unknown key, a wrong type, an unknown provider, a
//! fallback or default model that does not exist, or an environment variable
//! a model needs that is not set, stops start-up with a [`ConfigError`] that
//! names the file and the key. Secrets read from the environment are resolved
//! here, once, and never printed (`ModelConfig`'s `Debug` hides them).
//!
//! The parts: this file holds the file's shape and its defaults;
//! [`ModelConfig`] one `[[models]]` entry (`model.rs`); the checks that need
//! more than a type live in `validate.rs`.

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

mod model;
mod validate;

pub use model::{name_pattern, Midstream, ModelConfig, ProviderKind};

pub const DEFAULT_LISTEN: &str = "127.0.0.1:7800";

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub listen: SocketAddr,
    pub default_model: String,
    pub heartbeat_secs: u64,
    pub prompts_dir: PathBuf,
    /// After SIGTERM/Ctrl-C, how long streams in flight may go on.
    pub shutdown_grace_secs: u64,
    /// After SIGTERM/Ctrl-C, how long to keep accepting (with `/readyz`
    /// already 503) so a load balancer can notice before connections are refused.
    pub shutdown_delay_secs: u64,
    /// Serve the playground page at `/` (section 9).
    pub playground: bool,
    pub limits: Limits,
    pub auth: Auth,
    pub cors: Cors,
    pub timeouts: Timeouts,
    pub streams: Streams,
    /// Shared state for replicas (section 12); absent: all in this process.
    pub store: Store,
    /// TLS on the listener; absent: cleartext (HTTP/1.1 and HTTP/2 alike).
    pub tls: Option<Tls>,
    /// The mock's scripted answers (section 13).
    pub mock: MockLab,
    /// The chat UI doors (section 15).
    pub ui: Ui,
    /// Where routes with `record = true` write their exchanges (section 14).
    pub record: Record,
    /// OpenTelemetry traces (section 19); off unless an endpoint is set.
    pub telemetry: Telemetry,
    pub models: Vec<ModelConfig>,
    /// The directory of the config file, when there is one: what a relative
    /// `mock.scenarios_dir` and the default `mocks/` are relative to.
    #[serde(skip)]
    pub config_dir: Option<PathBuf>,
}

/// `[mock]`: what the mock answers besides what it makes up.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MockLab {
    /// TOML files of `[[scenarios]]` (`crate::scenarios`); default: `mocks/`
    /// beside the config file (or in the working directory without one),
    /// when it exists.
    pub scenarios_dir: Option<PathBuf>,
}

/// `[telemetry]`: OpenTelemetry traces over OTLP/HTTP (`crate::telemetry`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Telemetry {
    /// The collector's OTLP/HTTP base URL (`http://127.0.0.1:4318`; spans
    /// go to its `/v1/traces`). Absent: the standard
    /// `OTEL_EXPORTER_OTLP_ENDPOINT` variables decide, and with none set,
    /// tracing is off.
    pub otlp_endpoint: Option<String>,
    /// The `service.name` of the spans (`OTEL_SERVICE_NAME` wins).
    pub service_name: String,
    /// Ended spans waiting to be sent; past it they are dropped and counted.
    pub max_queue_spans: usize,
}

impl Default for Telemetry {
    fn default() -> Self {
        Telemetry {
            otlp_endpoint: None,
            service_name: "sluice".into(),
            max_queue_spans: 2048,
        }
    }
}

/// `[record]`: where routes with `record = true` write their exchanges.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Record {
    /// The directory (relative to the config file's); unset: no recording.
    pub dir: Option<PathBuf>,
    /// One recording's most bytes; past it, it ends with `truncated`.
    pub max_bytes: u64,
}

impl Default for Record {
    fn default() -> Record {
        Record {
            dir: None,
            max_bytes: 8 * 1024 * 1024,
        }
    }
}

/// `[ui]`: the chat UI doors (`/v1/ui/chat`, `/v1/agui`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Ui {
    /// A `useChat` answer outlives its page (a reload resumes it with
    /// `GET /v1/ui/chat/ID/stream`) until it ends, is stopped with `DELETE`
    /// or has had no reader for `streams.abandon_ms`. `false`: a page that
    /// leaves cancels its answer, as on every other door.
    pub resume: bool,
}

impl Default for Ui {
    fn default() -> Ui {
        Ui { resume: true }
    }
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: DEFAULT_LISTEN.parse().expect("a valid default address"),
            default_model: "mock".into(),
            heartbeat_secs: 15,
            prompts_dir: "prompts".into(),
            shutdown_grace_secs: 20,
            shutdown_delay_secs: 0,
            playground: true,
            limits: Limits::default(),
            auth: Auth::default(),
            cors: Cors::default(),
            timeouts: Timeouts::default(),
            streams: Streams::default(),
            store: Store::default(),
            tls: None,
            mock: MockLab::default(),
            ui: Ui::default(),
            record: Record::default(),
            telemetry: Telemetry::default(),
            models: Vec::new(),
            config_dir: None,
        }
        .with_builtin_mock()
    }
}

/// Request limits. `max_body_bytes` is enforced by the front doors, the rest
/// by the limits layer (`crate::limits`), per client: its API key when auth
/// is on, else its address.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    pub max_body_bytes: usize,
    /// Sustained requests per second per client; 0 turns rate limiting off.
    pub requests_per_second: u32,
    /// Requests a client may make at once before the rate applies.
    pub burst: u32,
    pub max_concurrent_streams: usize,
    pub per_client_concurrent_streams: usize,
    /// Take the client's address from the last `X-Forwarded-For` entry, for a
    /// sluice behind a trusted reverse proxy. Off by default: clients could
    /// otherwise pick their own rate-limit key.
    pub trust_forwarded_for: bool,
    /// Open client connections, all threads together; past it a new
    /// connection is closed at once, with a warning in the log.
    pub max_connections: usize,
    /// A connection must send its first bytes, and each request head, within
    /// this long (slowloris; an idle keep-alive connection is closed too).
    pub header_timeout_ms: u64,
    /// A client that takes none of the bytes sluice writes for this long is
    /// cut off, and its stream's upstream request with it.
    pub send_timeout_ms: u64,
    /// A connection with no request in flight for this long is closed:
    /// GOAWAY under HTTP/2, a plain close under HTTP/1.1.
    pub idle_connection_ms: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_body_bytes: 1024 * 1024,
            requests_per_second: 50,
            burst: 100,
            max_concurrent_streams: 10_000,
            per_client_concurrent_streams: 200,
            trust_forwarded_for: false,
            max_connections: 50_000,
            header_timeout_ms: 30_000,
            send_timeout_ms: 60_000,
            idle_connection_ms: 60_000,
        }
    }
}

impl Limits {
    pub fn header_timeout(&self) -> Duration {
        Duration::from_millis(self.header_timeout_ms)
    }

    pub fn send_timeout(&self) -> Duration {
        Duration::from_millis(self.send_timeout_ms)
    }

    pub fn idle_connection(&self) -> Duration {
        Duration::from_millis(self.idle_connection_ms)
    }
}

#[derive(Clone, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct Auth {
    /// Client keys, sent as `Authorization: Bearer` or `x-api-key`. Empty (and
    /// no `api_keys_env`): no auth.
    pub api_keys: Vec<String>,
    /// An environment variable holding more keys, comma-separated, so real
    /// deployments keep them out of the file. Read once at start-up.
    pub api_keys_env: Option<String>,
}

impl fmt::Debug for Auth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Auth")
            .field(
                "api_keys",
                &format_args!("[{} hidden]", self.api_keys.len()),
            )
            .finish()
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Cors {
    /// Origins whose pages may call sluice: origins such as
    /// `"http://localhost:5173"`, `"loopback"` (any `localhost`, `127.0.0.1`
    /// or `[::1]` origin, any port: the default, for frontend dev servers),
    /// or `"*"` (any page on any site).
    pub allow_origins: Vec<String>,
    /// The `Host`s sluice answers, against DNS rebinding: names such as
    /// `"sluice.internal"`, with or without a port. Absent: the loopback
    /// names when sluice listens on a loopback address, any host otherwise.
    pub allowed_hosts: Option<Vec<String>>,
}

impl Default for Cors {
    fn default() -> Self {
        Cors {
            allow_origins: vec![LOOPBACK.into()],
            allowed_hosts: None,
        }
    }
}

/// In `cors.allow_origins`: every loopback origin.
pub const LOOPBACK: &str = "loopback";

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Timeouts {
    pub connect_ms: u64,
    pub first_token_ms: u64,
    /// Longest silence between upstream tokens.
    pub idle_ms: u64,
    pub total_ms: u64,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            connect_ms: 5_000,
            first_token_ms: 60_000,
            idle_ms: 30_000,
            total_ms: 600_000,
        }
    }
}

impl Timeouts {
    pub fn connect(&self) -> Duration {
        Duration::from_millis(self.connect_ms)
    }
    pub fn first_token(&self) -> Duration {
        Duration::from_millis(self.first_token_ms)
    }
    pub fn idle(&self) -> Duration {
        Duration::from_millis(self.idle_ms)
    }
    pub fn total(&self) -> Duration {
        Duration::from_millis(self.total_ms)
    }
}

/// `[tls]`: a PEM certificate chain and its key (PKCS#8, PKCS#1 or SEC1),
/// read relative to the working directory.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Tls {
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
}

/// Generations as resources (`[streams]`, contract section 7).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Streams {
    /// How long a `/v1/stream` generation runs on after its client leaves,
    /// for a reconnect to resume it; 0 cancels it at once.
    pub reconnect_grace_ms: u64,
    /// How long a `POST /v1/generations` generation runs with no watcher.
    pub abandon_ms: u64,
    /// How long an ended generation's log stays readable.
    pub retain_secs: u64,
    /// The most the logs of ended generations may hold together; the oldest
    /// are dropped first.
    pub retain_max_bytes: usize,
    /// The most one generation's log holds; past it its oldest frames are
    /// dropped (a resume from before them is a 404).
    pub max_log_bytes: usize,
}

impl Default for Streams {
    fn default() -> Self {
        Streams {
            reconnect_grace_ms: 0,
            abandon_ms: 30_000,
            retain_secs: 300,
            retain_max_bytes: 64 * 1024 * 1024,
            max_log_bytes: 8 * 1024 * 1024,
        }
    }
}

impl Streams {
    pub fn reconnect_grace(&self) -> Duration {
        Duration::from_millis(self.reconnect_grace_ms)
    }
    pub fn abandon(&self) -> Duration {
        Duration::from_millis(self.abandon_ms)
    }
}

/// `[store]`: where replicas keep what they share (contract section 12).
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Store {
    /// `redis://HOST:PORT[/DB]`, or `rediss://` for TLS, with an ACL user
    /// and password as `rediss://USER:PASSWORD@HOST:PORT` (a password alone
    /// as `redis://:PASSWORD@HOST`): generations and limits live in Redis,
    /// shared by every replica that names the same server and prefix.
    /// Absent: in this process.
    pub redis_url: Option<String>,
    /// For `rediss://`: the PEM certificate(s) of the CA that signed the
    /// server's, instead of the system's roots (relative to the working
    /// directory, as `[tls]` files are).
    pub ca_file: Option<PathBuf>,
    /// The prefix of every key and channel sluice uses, so that several
    /// deployments can share one Redis.
    pub key_prefix: String,
    /// Watchers here of other replicas' generations read with a blocking
    /// `XREAD` on a Redis connection of their own, up to this many
    /// generations at once; past it they poll every 100 ms on the shared
    /// connection. Bounds this replica's connections to Redis (whose
    /// `maxclients` is 10,000 by default).
    pub blocking_readers: usize,
    /// `true`: `redis_url` is one node of a Redis Cluster, and sluice finds
    /// the others from it. A list of node URLs: these are known nodes too,
    /// tried when `redis_url` does not answer. Every key a script or
    /// pipeline touches at once shares a hash tag (`super::store`), so each
    /// lands in one slot. Off: `redis_url` is one server (or a primary).
    pub cluster: Cluster,
}

/// `[store] cluster`: `true`/`false`, or the URLs of more nodes.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(untagged)]
pub enum Cluster {
    On(bool),
    Nodes(Vec<String>),
}

impl Cluster {
    /// The nodes to start from besides `redis_url`; `None` when off.
    pub fn seeds(&self) -> Option<&[String]> {
        match self {
            Cluster::On(false) => None,
            Cluster::On(true) => Some(&[]),
            Cluster::Nodes(nodes) => Some(nodes),
        }
    }
}

impl Default for Store {
    fn default() -> Self {
        Store {
            redis_url: None,
            ca_file: None,
            key_prefix: "sluice".into(),
            blocking_readers: 256,
            cluster: Cluster::On(false),
        }
    }
}

impl fmt::Debug for Store {
    // The URL may carry a password.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Store")
            .field("redis_url", &self.redis_url.as_ref().map(|_| "[hidden]"))
            .field("key_prefix", &self.key_prefix)
            .field("blocking_readers", &self.blocking_readers)
            .field("cluster", &self.cluster.seeds().map(<[String]>::len))
            .finish()
    }
}

/// A config problem, naming the file and the key.
#[derive(Debug)]
pub struct ConfigError {
    pub file: Option<PathBuf>,
    pub key: String,
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.file {
            Some(file) => write!(f, "config error in {}: ", file.display())?,
            None => write!(f, "config error: ")?,
        }
        if self.key.is_empty() || self.key == "." {
            write!(f, "{}", self.message)
        } else {
            write!(f, "`{}`: {}", self.key, self.message)
        }
    }
}

impl std::error::Error for ConfigError {}

impl Config {
    /// Reads and validates a config file, resolving model secrets from the
    /// environment through `env`.
    pub fn load(path: &Path, env: impl Fn(&str) -> Option<String>) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
            file: Some(path.to_owned()),
            key: String::new(),
            message: format!("cannot read the file: {e}"),
        })?;
        let mut config = Config::parse(&text, env).map_err(|mut e| {
            e.file = Some(path.to_owned());
            e
        })?;
        config.config_dir = Some(
            path.parent()
                .filter(|dir| !dir.as_os_str().is_empty())
                .map_or_else(|| PathBuf::from("."), Path::to_owned),
        );
        config.check_scenarios().map_err(|mut e| {
            e.file.get_or_insert_with(|| path.to_owned());
            e
        })?;
        Ok(config)
    }

    /// The mock's scenario files parse (a bad one names its file and line),
    /// and a `mock.scenarios_dir` that is set exists.
    pub fn check_scenarios(&self) -> Result<(), ConfigError> {
        let Some(dir) = self.scenarios_dir() else {
            return Ok(());
        };
        if !dir.is_dir() {
            return Err(ConfigError {
                file: None,
                key: "mock.scenarios_dir".into(),
                message: format!("`{}` is not a directory", dir.display()),
            });
        }
        crate::scenarios::Scenarios::load(Some(&dir)).map_err(|err| ConfigError {
            file: Some(err.file.clone()),
            key: err
                .line
                .map(|line| format!("line {line}"))
                .unwrap_or_default(),
            message: err.message,
        })?;
        Ok(())
    }

    /// `path` as the config means it: relative to the config file's
    /// directory (the working directory without one).
    pub fn relative(&self, path: &Path) -> PathBuf {
        self.config_dir
            .clone()
            .unwrap_or_else(|| PathBuf::from("."))
            .join(path)
    }

    /// Where the mock's scenarios are, if anywhere: `mock.scenarios_dir`
    /// (relative to the config file's directory), or `mocks/` there (the
    /// working directory without a config file) when it exists.
    pub fn scenarios_dir(&self) -> Option<PathBuf> {
        let base = self
            .config_dir
            .clone()
            .unwrap_or_else(|| PathBuf::from("."));
        match &self.mock.scenarios_dir {
            Some(dir) => Some(base.join(dir)),
            None => Some(base.join("mocks")).filter(|dir| dir.is_dir()),
        }
    }

    /// Parses and validates config text (no file named in errors).
    pub fn parse(text: &str, env: impl Fn(&str) -> Option<String>) -> Result<Config, ConfigError> {
        let deserializer = toml::Deserializer::parse(text).map_err(|e| ConfigError {
            file: None,
            key: String::new(),
            message: e.to_string().trim_end().to_string(),
        })?;
        let config: Config =
            serde_path_to_error::deserialize(deserializer).map_err(|e| ConfigError {
                file: None,
                key: e.path().to_string(),
                message: e.inner().message().to_string(),
            })?;
        config.with_builtin_mock().validated(env)
    }

    /// The config with no file: the built-in mock, which also answers every
    /// other model name (`name = "*"`), so an app with a hard-coded model
    /// name works against it unchanged (contract section 13).
    pub fn embedded() -> Config {
        let mut config = Config::default();
        let mut any = ModelConfig::builtin_mock();
        any.name = "*".into();
        config.models.push(any);
        config
    }

    /// `mock` exists in every config that does not define it itself.
    fn with_builtin_mock(mut self) -> Config {
        if !self.models.iter().any(|m| m.name == "mock") {
            self.models.push(ModelConfig::builtin_mock());
        }
        self
    }

    pub fn shutdown_grace(&self) -> Duration {
        Duration::from_secs(self.shutdown_grace_secs)
    }

    pub fn shutdown_delay(&self) -> Duration {
        Duration::from_secs(self.shutdown_delay_secs)
    }

    pub fn heartbeat(&self) -> Duration {
        Duration::from_secs(self.heartbeat_secs)
    }
}
