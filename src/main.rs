//! The `sluice` binary: parse the command line, load the config, serve.

use std::io::IsTerminal;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use sluice::config::Config;

/// jemalloc instead of glibc's malloc: under callgrind, 14% fewer user-space
/// instructions per request and 5% fewer per relayed token, where glibc's
/// malloc and free were ~23% of a short request (BENCHMARKS.md).
#[cfg(not(target_env = "msvc"))]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// jemalloc's options, read before `main`: one arena per CPU, to match one
/// serving thread per core (its default, four per CPU, held ~8% more memory
/// per open stream than glibc; this holds the same); and its background
/// thread, which hands memory freed 10 s ago back to the system even while
/// no request comes (without it jemalloc purges only when called, so an idle
/// process kept what its last burst freed: 34.5 to 38.9 MiB warm and idle,
/// 25.3 with it, `benches/idle_rss.py`). `_RJEM_MALLOC_CONF` still overrides
/// it.
#[cfg(not(target_env = "msvc"))]
#[allow(non_upper_case_globals)]
// The one unsafe attribute: jemalloc reads its options from this symbol,
// which must have exactly this name and be defined once (only here).
#[allow(unsafe_code)]
#[export_name = "_rjem_malloc_conf"]
pub static malloc_conf: &[u8] = b"percpu_arena:percpu,background_thread:true\0";

/// An LLM token-streaming proxy. With no config it serves the built-in mock
/// model on 127.0.0.1:7800.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    /// A TOML config file (see docs/configuration.md).
    #[arg(long, env = "SLUICE_CONFIG")]
    config: Option<PathBuf>,
    /// The address to listen on, IP:PORT or localhost:PORT; overrides
    /// `listen` in the config.
    #[arg(long, env = "SLUICE_LISTEN", value_parser = listen_address)]
    listen: Option<SocketAddr>,
    /// Log lines for people (`text`) or for log pipelines (`json`, one object
    /// per line). `RUST_LOG` picks what is logged (default `sluice=info`).
    #[arg(long, env = "SLUICE_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
    /// Serving threads, each with its own runtime and listening socket
    /// (default: one per core).
    #[arg(long, env = "SLUICE_THREADS")]
    threads: Option<std::num::NonZeroUsize>,
}

#[derive(clap::Subcommand)]
enum Command {
    /// Exits 0 if a running sluice answers its readiness probe (for container
    /// health checks, where there is no curl).
    /// The probe is `/readyz` at the address sluice listens on: `--listen`
    /// or `SLUICE_LISTEN`, else the config's `listen`, else 127.0.0.1:7800.
    Health {
        /// The probe's URL, instead.
        #[arg(long)]
        url: Option<String>,
    },
    /// Checks a config file (and its scenario files) and exits: 0 if it
    /// loads, 2 with the error naming the key (and the file) if not.
    CheckConfig {
        /// The config file.
        file: PathBuf,
    },
    /// Lists the recordings in a directory (`[record] dir`, a replay
    /// route's `dir`): file, route, how each ended, its tokens and length.
    Replay {
        /// The directory.
        #[arg(long, value_name = "DIR")]
        list: PathBuf,
    },
    /// Load-test an SSE token endpoint (sluice's, or any OpenAI-compatible, Responses or Messages one).
    Bench(sluice::bench::BenchArgs),
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

/// `--listen`'s value: `IP:PORT`, or `localhost:PORT` (the loopback).
fn listen_address(text: &str) -> Result<SocketAddr, String> {
    if let Some(port) = text.strip_prefix("localhost:") {
        return port
            .parse::<u16>()
            .map(|port| SocketAddr::from(([127, 0, 0, 1], port)))
            .map_err(|_| format!("`{text}`: the port must be a number from 0 to 65535"));
    }
    text.parse()
        .map_err(|_| format!("`{text}` is not IP:PORT (or localhost:PORT), e.g. 127.0.0.1:7800"))
}

/// Where `sluice health` probes: the address this config listens on (an
/// unspecified IP is probed on the loopback), `https` under `[tls]`.
fn readyz_url(cli: &Cli) -> String {
    let config = cli
        .config
        .as_deref()
        .and_then(|path| Config::load(path, |var| std::env::var(var).ok()).ok());
    let mut addr = cli
        .listen
        .or(config.as_ref().map(|c| c.listen))
        .unwrap_or_else(|| Config::default().listen);
    if addr.ip().is_unspecified() {
        addr.set_ip(match addr {
            SocketAddr::V4(_) => std::net::Ipv4Addr::LOCALHOST.into(),
            SocketAddr::V6(_) => std::net::Ipv6Addr::LOCALHOST.into(),
        });
    }
    let scheme = match config.is_some_and(|c| c.tls.is_some()) {
        true => "https",
        false => "http",
    };
    format!("{scheme}://{addr}/readyz")
}

/// Config errors exit with this code, as the contract says.
const CONFIG_ERROR: u8 = 2;

fn main() -> ExitCode {
    let cli = Cli::parse();
    match &cli.command {
        Some(Command::Health { url }) => {
            let url = url.clone().unwrap_or_else(|| readyz_url(&cli));
            return health(&url);
        }
        Some(Command::CheckConfig { file }) => {
            return match Config::load(file, |var| std::env::var(var).ok()) {
                Ok(_) => {
                    println!("sluice: {} is a valid config", file.display());
                    ExitCode::SUCCESS
                }
                Err(err) => {
                    eprintln!("sluice: {err}");
                    ExitCode::from(CONFIG_ERROR)
                }
            };
        }
        Some(Command::Bench(args)) => return bench(args.clone()),
        Some(Command::Replay { list }) => {
            if !list.is_dir() {
                eprintln!("sluice: {} is not a directory", list.display());
                return ExitCode::from(CONFIG_ERROR);
            }
            let recordings = sluice::recordings(list);
            for line in &recordings {
                println!("{line}");
            }
            println!("{} recording(s) in {}", recordings.len(), list.display());
            return ExitCode::SUCCESS;
        }
        None => {}
    }
    init_logs(cli.log_format);
    let mut config = match &cli.config {
        Some(path) => match Config::load(path, |var| std::env::var(var).ok()) {
            Ok(config) => config,
            Err(err) => {
                eprintln!("sluice: {err}");
                return ExitCode::from(CONFIG_ERROR);
            }
        },
        None => {
            let config = Config::embedded();
            if let Err(err) = config.check_scenarios() {
                eprintln!("sluice: {err}");
                return ExitCode::from(CONFIG_ERROR);
            }
            config
        }
    };
    if let Some(listen) = cli.listen {
        config.listen = listen;
    }
    let threads = cli
        .threads
        .or_else(|| std::thread::available_parallelism().ok())
        .map_or(1, std::num::NonZeroUsize::get);
    match run(config, threads) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("sluice: {err}");
            ExitCode::FAILURE
        }
    }
}

#[tokio::main(flavor = "current_thread")]
async fn health(url: &str) -> ExitCode {
    // It probes this machine's own sluice, whose certificate may be one a
    // client trusts by name only.
    let client = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(3))
        .danger_accept_invalid_certs(
            url.starts_with("https://127.") || url.starts_with("https://[::1]"),
        )
        .build();
    let answer = match client {
        Ok(client) => client.get(url).send().await,
        Err(err) => Err(err),
    };
    match answer {
        Ok(response) if response.status().is_success() => ExitCode::SUCCESS,
        Ok(response) => {
            eprintln!("sluice health: {url} answered {}", response.status());
            ExitCode::FAILURE
        }
        Err(err) => {
            eprintln!("sluice health: {url}: {err}");
            ExitCode::FAILURE
        }
    }
}

#[tokio::main]
async fn bench(args: sluice::bench::BenchArgs) -> ExitCode {
    raise_open_files_limit();
    match sluice::bench::run(args).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("sluice bench: {err}");
            ExitCode::FAILURE
        }
    }
}

/// Thousands of streams need thousands of sockets: lift the soft limit on
/// open files to the hard one.
fn raise_open_files_limit() {
    #[cfg(unix)]
    if let Ok((_, hard)) = rlimit::getrlimit(rlimit::Resource::NOFILE) {
        let _ = rlimit::setrlimit(rlimit::Resource::NOFILE, hard, hard);
    }
}

fn init_logs(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| "sluice=info".into());
    // Colour only for people at a terminal: escape codes in a log file or a
    // pipe are noise, and formatting them was 6% of a short request's CPU (callgrind, commit de71ff0).
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stdout().is_terminal());
    match format {
        LogFormat::Text => logs.init(),
        LogFormat::Json => logs.json().flatten_event(true).init(),
    }
}

fn run(config: Config, threads: usize) -> std::io::Result<()> {
    raise_open_files_limit();
    let listeners = sluice::server::bind_per_core(config.listen, threads).map_err(|e| {
        std::io::Error::new(e.kind(), format!("cannot listen on {}: {e}", config.listen))
    })?;
    tracing::info!(
        "sluice listening on http://{} (models: {}; {} threads)",
        listeners[0].local_addr()?,
        model_names(&config),
        listeners.len()
    );
    sluice::server::serve_per_core(listeners, config, shutdown_signal())
}

/// The configured model names, sorted, without building their providers.
fn model_names(config: &Config) -> String {
    let mut names: Vec<&str> = config.models.iter().map(|m| m.name.as_str()).collect();
    names.sort_unstable();
    names.join(", ")
}

/// Ctrl-C or SIGTERM. A second one, during the grace period, exits at once.
async fn shutdown_signal() {
    signalled().await;
    tracing::info!("shutting down: not ready any more; letting streams in flight finish");
    // The one task main spawns: it only waits for a second signal.
    #[allow(clippy::disallowed_methods)]
    tokio::spawn(async {
        signalled().await;
        tracing::warn!("a second signal: exiting without waiting for streams in flight");
        std::process::exit(130);
    });
}

async fn signalled() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
}
