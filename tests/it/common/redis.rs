//! A real `redis-server` of a test's own on a free loopback port, and
//! sluice replicas on it (`scale_out.rs`, `store_faults.rs`); or one set up
//! as clouds sell it ([`Kind::Managed`]): TLS only, with certificates made
//! here, and an ACL user with a password (the default user off); or a
//! three-node Redis Cluster ([`Kind::Cluster`]), made by `redis-cli
//! --cluster create`.
//!
//! Needs `redis-server` and `redis-cli` (Debian's package, which `.ci/run`
//! installs).
//! Without it the tests say so and pass, unless `SLUICE_REQUIRE_REDIS=1`
//! (set by `.ci/run`), where a missing server fails.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::binary::Sluice;
use super::*;

fn redis_binary() -> Option<PathBuf> {
    let found = ["/usr/bin/redis-server", "/usr/local/bin/redis-server"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists());
    if found.is_none() {
        let hint = "redis-server is not installed (apt-get install redis-server)";
        if std::env::var_os("SLUICE_REQUIRE_REDIS").is_some_and(|v| v == "1") {
            panic!("{hint}");
        }
        eprintln!("skipped: {hint}");
    }
    found
}

/// How a test's Redis is reached.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Kind {
    /// `redis://`, no password.
    Plain,
    /// `rediss://` only (no cleartext port), the server's certificate signed
    /// by a CA of the test's own, and ACL user `sluice` with a password.
    Managed,
    /// Three primaries of a Redis Cluster, the slots split among them;
    /// `redis://` to one of them and `[store] cluster = true`.
    Cluster,
}

impl Kind {
    fn tls(self) -> bool {
        match self {
            Kind::Managed => true,
            Kind::Plain | Kind::Cluster => false,
        }
    }

    fn cluster(self) -> bool {
        match self {
            Kind::Cluster => true,
            Kind::Plain | Kind::Managed => false,
        }
    }
}

/// The nodes of a [`Kind::Cluster`].
const CLUSTER_NODES: usize = 3;

/// The managed server's ACL user and password.
pub const ACL_USER: &str = "sluice";
pub const ACL_PASSWORD: &str = "acl-pass-0123456789";

/// A `redis-server` of the test's own, with nothing saved to disk.
pub struct Redis {
    binary: PathBuf,
    pub port: u16,
    child: Option<Child>,
    /// For [`Kind::Managed`]: the folder of its CA and certificate.
    tls: Option<PathBuf>,
    /// For [`Kind::Cluster`]: every node's port and cluster bus port (the
    /// first is `port`), and the other nodes' processes.
    cluster: Vec<(u16, u16)>,
    others: Vec<Child>,
}

impl Redis {
    pub fn start() -> Option<Redis> {
        Redis::start_as(Kind::Plain)
    }

    pub fn start_as(kind: Kind) -> Option<Redis> {
        let binary = redis_binary()?;
        // Every node's port and cluster bus port, all different.
        let ports = free_ports(2 * CLUSTER_NODES);
        let port = ports[0];
        let tls = kind.tls().then(|| certificates(port));
        let cluster = match kind.cluster() {
            true => ports.chunks(2).map(|pair| (pair[0], pair[1])).collect(),
            false => Vec::new(),
        };
        let mut redis = Redis {
            binary,
            port,
            child: None,
            tls,
            cluster,
            others: Vec::new(),
        };
        match kind.cluster() {
            true => redis.start_cluster(),
            false => redis.resume(),
        }
        Some(redis)
    }

    /// Starts the nodes, joins them with `redis-cli --cluster create`, and
    /// waits until every node says the cluster is ok.
    fn start_cluster(&mut self) {
        let dir = std::env::temp_dir().join(format!(
            "sluice-redis-cluster-{}-{}",
            std::process::id(),
            self.port
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let mut children = Vec::new();
        for (port, bus) in &self.cluster {
            let child = Command::new(&self.binary)
                .args([
                    "--port",
                    &port.to_string(),
                    "--cluster-port",
                    &bus.to_string(),
                ])
                .args(["--cluster-enabled", "yes"])
                .arg("--cluster-config-file")
                .arg(dir.join(format!("nodes-{port}.conf")))
                .args(["--bind", "127.0.0.1"])
                .args(["--save", "", "--appendonly", "no", "--dir"])
                .arg(&dir)
                .stdout(Stdio::null())
                .stderr(Stdio::inherit())
                .spawn()
                .expect("redis-server starts");
            children.push(child);
            listening(*port);
        }
        self.child = Some(children.remove(0));
        self.others = children;
        let nodes: Vec<String> = self
            .cluster
            .iter()
            .map(|(port, _)| format!("127.0.0.1:{port}"))
            .collect();
        let created = self
            .cli()
            .args(["--cluster", "create"])
            .args(&nodes)
            .args(["--cluster-replicas", "0", "--cluster-yes"])
            .stdout(Stdio::null())
            .status()
            .expect("redis-cli runs");
        assert!(created.success(), "redis-cli --cluster create");
        let deadline = Instant::now() + Duration::from_secs(20);
        for (port, _) in &self.cluster {
            loop {
                let info = self
                    .cli()
                    .args(["-p", &port.to_string(), "cluster", "info"])
                    .output()
                    .expect("redis-cli runs");
                if String::from_utf8_lossy(&info.stdout).contains("cluster_state:ok") {
                    break;
                }
                assert!(Instant::now() < deadline, "the cluster never became ok");
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }

    /// For a cluster: the number of keys on each node.
    pub fn keys_per_node(&self) -> Vec<usize> {
        self.cluster
            .iter()
            .map(|(port, _)| {
                let out = self
                    .cli()
                    .args(["-p", &port.to_string(), "dbsize"])
                    .output()
                    .expect("redis-cli runs");
                String::from_utf8_lossy(&out.stdout).trim().parse().unwrap()
            })
            .collect()
    }

    /// `redis-cli`, with TLS and the ACL user for a managed server.
    fn cli(&self) -> Command {
        let mut cli = Command::new("redis-cli");
        // It reads its standard input when that is not a terminal.
        cli.stdin(Stdio::null());
        if let Some(dir) = &self.tls {
            cli.arg("--tls")
                .arg("--cacert")
                .arg(dir.join("ca.crt"))
                .args([
                    "--user",
                    ACL_USER,
                    "--pass",
                    ACL_PASSWORD,
                    "--no-auth-warning",
                ]);
        }
        cli
    }

    /// The arguments that make a server listen on `port`: in the clear, or
    /// (managed) TLS only with the ACL user.
    fn listen_args(&self, port: u16) -> Vec<String> {
        let mut args: Vec<String> = Vec::new();
        match &self.tls {
            None => args.extend(["--port".into(), port.to_string()]),
            Some(dir) => {
                let file = |name: &str| dir.join(name).display().to_string();
                args.extend([
                    "--port".into(),
                    "0".into(),
                    "--tls-port".into(),
                    port.to_string(),
                ]);
                args.extend(["--tls-cert-file".into(), file("server.crt")]);
                args.extend(["--tls-key-file".into(), file("server.key")]);
                args.extend(["--tls-ca-cert-file".into(), file("ca.crt")]);
                args.extend(["--tls-auth-clients".into(), "no".into()]);
                // Between the nodes too, when clustered.
                args.extend(["--tls-cluster".into(), "yes".into()]);
                args.extend(["--user".into(), "default".into(), "off".into()]);
                args.extend(["--user".into(), ACL_USER.into(), "on".into()]);
                args.push(format!(">{ACL_PASSWORD}"));
                args.extend(["~*".into(), "&*".into(), "+@all".into()]);
            }
        }
        args
    }

    pub fn url(&self) -> String {
        match self.tls {
            None => format!("redis://127.0.0.1:{}", self.port),
            Some(_) => format!("rediss://{ACL_USER}:{ACL_PASSWORD}@localhost:{}", self.port),
        }
    }

    /// The `[store]` lines for a replica on this server.
    pub fn store_config(&self) -> String {
        let mut store = format!("[store]\nredis_url = \"{}\"\n", self.url());
        if let Some(((_, _), more)) = self.cluster.split_first() {
            // The other nodes listed too: sluice needs only one.
            let url = self.url();
            let more: Vec<String> = more
                .iter()
                .map(|(port, _)| {
                    format!(
                        "\"{}\"",
                        url.replace(&self.port.to_string(), &port.to_string())
                    )
                })
                .collect();
            store.push_str(&format!("cluster = [{}]\n", more.join(", ")));
        }
        if let Some(dir) = &self.tls {
            store.push_str(&format!("ca_file = \"{}\"\n", dir.join("ca.crt").display()));
        }
        store
    }

    /// Starts the server (again) on its port.
    pub fn resume(&mut self) {
        let mut command = Command::new(&self.binary);
        command.args(self.listen_args(self.port));
        let child = command
            .args(["--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no", "--dir"])
            .arg(std::env::temp_dir())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("redis-server starts");
        self.child = Some(child);
        listening(self.port);
    }

    pub fn stop(&mut self) {
        for mut child in self.child.take().into_iter().chain(self.others.drain(..)) {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        self.stop();
    }
}

fn listening(port: u16) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "redis-server did not listen");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A replica on `redis` with `extra` config (TOML sections after `[store]`).
pub fn replica(redis: &Redis, extra: &str) -> Sluice {
    Sluice::start(&format!("{}{extra}", redis.store_config()), &[])
}

/// Two replicas with the same config, and their Redis.
pub async fn pair(extra: &str) -> Option<(Redis, Sluice, Sluice)> {
    pair_on(Kind::Plain, extra).await
}

/// Two replicas with the same config, on a Redis of `kind`.
pub async fn pair_on(kind: Kind, extra: &str) -> Option<(Redis, Sluice, Sluice)> {
    let redis = Redis::start_as(kind)?;
    let (a, b) = replicas(&redis, extra).await;
    Some((redis, a, b))
}

/// Two replicas on `redis` with `extra` config, once each has reached it.
pub async fn replicas(redis: &Redis, extra: &str) -> (Sluice, Sluice) {
    let a = replica(redis, extra);
    let b = replica(redis, extra);
    // Ready once each has reached Redis (its lease is renewed at start).
    let deadline = Instant::now() + Duration::from_secs(10);
    for on in [&a, &b] {
        while ready(on).await != 200 {
            assert!(Instant::now() < deadline, "a replica never reached Redis");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    (a, b)
}

pub async fn post_generation(on: &Sluice, mock: Value) -> String {
    let response = client()
        .post(on.url("/v1/generations"))
        .json(&json!({"prompt": "hi", "mock": mock}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    let body: Value = response.json().await.unwrap();
    body["id"].as_str().unwrap().to_owned()
}

pub async fn events(on: &Sluice, id: &str) -> Received {
    receive(
        client()
            .get(on.url(&format!("/v1/generations/{id}/events")))
            .send()
            .await
            .unwrap(),
    )
    .await
}

/// The frame indexes of a response's events, checked to be `GEN:N` ids.
pub fn indexes(got: &Received, id: &str) -> Vec<u64> {
    got.events
        .iter()
        .map(|e| {
            let frame = e.id.as_deref().expect("every frame has an id");
            let (generation, n) = frame.rsplit_once(':').unwrap();
            assert_eq!(generation, id);
            n.parse().unwrap()
        })
        .collect()
}

/// `GET /v1/generations/GEN` through `on`.
pub async fn status(on: &Sluice, id: &str) -> Value {
    client()
        .get(on.url(&format!("/v1/generations/{id}")))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

pub async fn metric(on: &Sluice, name: &str) -> f64 {
    let text = client()
        .get(on.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.trim().parse().ok())
        .unwrap_or(0.0)
}

pub async fn ready(on: &Sluice) -> u16 {
    match client().get(on.url("/readyz")).send().await {
        Ok(response) => response.status().as_u16(),
        Err(_) => 0,
    }
}

pub async fn until(within: Duration, mut check: impl AsyncFnMut() -> bool) -> bool {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if check().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    false
}

impl Redis {
    /// Freezes the server (SIGSTOP) for `pause`, as a stall would: commands
    /// sent meanwhile wait in its socket and run when it wakes.
    pub async fn stall(&self, pause: Duration) {
        let pid = self
            .child
            .as_ref()
            .expect("redis-server runs")
            .id()
            .to_string();
        let signal = |name: &str| {
            let status = Command::new("kill").args([name, &pid]).status().unwrap();
            assert!(status.success(), "kill {name} redis-server");
        };
        signal("-STOP");
        tokio::time::sleep(pause).await;
        signal("-CONT");
    }

    /// A connection of the test's own, to look at what sluice keeps.
    pub async fn connect(&self) -> ::redis::aio::MultiplexedConnection {
        let client = match &self.tls {
            None => ::redis::Client::open(self.url()).unwrap(),
            Some(dir) => ::redis::Client::build_with_tls(
                self.url(),
                ::redis::TlsCertificates {
                    client_tls: None,
                    root_cert: Some(std::fs::read(dir.join("ca.crt")).unwrap()),
                },
            )
            .unwrap(),
        };
        client.get_multiplexed_async_connection().await.unwrap()
    }
}

/// A CA of the test's own and a certificate it signed for `localhost` and
/// 127.0.0.1, written to a folder of their own: `ca.crt`, `server.crt`,
/// `server.key`.
fn certificates(port: u16) -> PathBuf {
    use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair};
    let dir = std::env::temp_dir().join(format!("sluice-redis-tls-{}-{port}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    // Names of their own: with rcgen's one default name on both, OpenSSL
    // (redis-cli, the cluster bus) takes the server's for self-signed.
    ca.distinguished_name
        .push(DnType::CommonName, "sluice test CA");
    let ca = CertifiedIssuer::self_signed(ca, KeyPair::generate().unwrap()).unwrap();
    let key = KeyPair::generate().unwrap();
    let mut server =
        CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()]).unwrap();
    server
        .distinguished_name
        .push(DnType::CommonName, "localhost");
    let server = server.signed_by(&key, &ca).unwrap();
    std::fs::write(dir.join("ca.crt"), ca.pem()).unwrap();
    std::fs::write(dir.join("server.crt"), server.pem()).unwrap();
    std::fs::write(dir.join("server.key"), key.serialize_pem()).unwrap();
    dir
}
