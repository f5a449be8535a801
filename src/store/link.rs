//! How this replica reaches Redis: one server (or a primary), or a Redis
//! Cluster (`[store] cluster`). The rest of the store sends commands on a
//! [`Shared`] connection and does not know which; what differs is here.
//!
//! - One server: the `redis` crate's connection manager, one multiplexed
//!   socket that reconnects by itself.
//! - A Cluster: the crate's cluster connection, which learns the slots from
//!   any node it is given, keeps a socket to each primary, routes each
//!   command by its key's slot, and follows `MOVED` when slots move. A
//!   pipeline or a script goes to one node as a whole, so the keys each one
//!   touches share a hash tag ([`super::codec`], [`super::counts`]).
//!   Pub/sub needs no routing: a Cluster passes every `PUBLISH` to every
//!   node, so the cancel channel is read on a plain connection to whichever
//!   known node answers.
//!
//! What it may not do: log a URL (it may carry a password).

use std::time::Duration;

use redis::aio::{
    ConnectionLike, ConnectionManager, ConnectionManagerConfig, MultiplexedConnection,
};
use redis::cluster::{ClusterClient, ClusterConfig};
use redis::cluster_async::ClusterConnection;
use redis::{AsyncConnectionConfig, Cmd, Pipeline, RedisFuture, RedisResult, Value};

/// Where the store's Redis is, as `[store]` says.
pub struct Target<'a> {
    pub url: &'a str,
    /// The CA's PEM, for `rediss://` with `ca_file`.
    pub ca: Option<Vec<u8>>,
    /// Some: a Cluster, these nodes known besides `url`.
    pub cluster: Option<&'a [String]>,
}

/// The connections to Redis one replica keeps, and how to make more.
pub enum Link {
    Single {
        client: redis::Client,
        manager: ConnectionManager,
    },
    Cluster {
        /// The known nodes, and the CA, for the clients of dedicated
        /// connections (whose deadline is set when a client is built).
        urls: Vec<String>,
        ca: Option<Vec<u8>>,
        shared: ClusterConnection,
        /// A plain client per known node, for pub/sub.
        nodes: Vec<redis::Client>,
    },
}

/// The shared connection (a handle; clones share its sockets).
#[derive(Clone)]
pub enum Shared {
    Single(ConnectionManager),
    /// One server's connection of its own ([`Link::dedicated`]).
    Own(MultiplexedConnection),
    Cluster(ClusterConnection),
}

impl ConnectionLike for Shared {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Shared::Single(conn) => conn.req_packed_command(cmd),
            Shared::Own(conn) => conn.req_packed_command(cmd),
            Shared::Cluster(conn) => conn.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Shared::Single(conn) => conn.req_packed_commands(pipeline, offset, count),
            Shared::Own(conn) => conn.req_packed_commands(pipeline, offset, count),
            Shared::Cluster(conn) => conn.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Shared::Single(conn) => conn.get_db(),
            Shared::Own(conn) => conn.get_db(),
            Shared::Cluster(conn) => conn.get_db(),
        }
    }
}

/// Deadlines and retries of a connection.
#[derive(Clone, Copy)]
pub struct Timing {
    pub connect: Duration,
    pub response: Duration,
}

impl Link {
    /// A link to `target`; nothing connects until the first command. A
    /// `rediss://` URL is TLS (rustls), checked against the target's CA when
    /// it has one, else the system's roots.
    pub fn new(target: Target<'_>, timing: Timing) -> RedisResult<Link> {
        let plain = |url: &str| match &target.ca {
            Some(pem) => redis::Client::build_with_tls(url, certificates(pem)),
            None => redis::Client::open(url),
        };
        let Some(more) = target.cluster else {
            let client = plain(target.url)?;
            let config = ConnectionManagerConfig::new()
                .set_connection_timeout(Some(timing.connect))
                .set_response_timeout(Some(timing.response))
                // Fail a request quickly while Redis is down; the next
                // command tries to connect again.
                .set_number_of_retries(1)
                .set_max_delay(Duration::from_millis(500));
            let manager = ConnectionManager::new_lazy_with_config(client.clone(), config)?;
            return Ok(Link::Single { client, manager });
        };
        let urls: Vec<String> = std::iter::once(target.url.to_owned())
            .chain(more.iter().cloned())
            .collect();
        let client = cluster_client(&urls, target.ca.as_deref(), timing)?;
        let shared = client.get_pending_async_connection_with_config(config(timing));
        let nodes = urls
            .iter()
            .map(|url| plain(url))
            .collect::<RedisResult<_>>()?;
        Ok(Link::Cluster {
            urls,
            ca: target.ca.clone(),
            shared,
            nodes,
        })
    }

    /// The shared connection.
    pub fn shared(&self) -> Shared {
        match self {
            Link::Single { manager, .. } => Shared::Single(manager.clone()),
            Link::Cluster { shared, .. } => Shared::Cluster(shared.clone()),
        }
    }

    /// A connection of its own (for a command that blocks), whose replies
    /// may take `timing.response`.
    pub async fn dedicated(&self, timing: Timing) -> RedisResult<Shared> {
        match self {
            Link::Single { client, .. } => {
                let config = AsyncConnectionConfig::new()
                    .set_connection_timeout(Some(timing.connect))
                    .set_response_timeout(Some(timing.response));
                let conn = client
                    .get_multiplexed_async_connection_with_config(&config)
                    .await?;
                Ok(Shared::Own(conn))
            }
            Link::Cluster { urls, ca, .. } => {
                let client = cluster_client(urls, ca.as_deref(), timing)?;
                let conn = client.get_async_connection_with_config(config(timing));
                Ok(Shared::Cluster(conn.await?))
            }
        }
    }

    /// A pub/sub connection: to the server, or to the first node of a
    /// Cluster that answers within `connect` (every node hears every
    /// `PUBLISH`).
    pub async fn pubsub(&self, connect: Duration) -> RedisResult<redis::aio::PubSub> {
        let nodes = match self {
            Link::Single { client, .. } => std::slice::from_ref(client),
            Link::Cluster { nodes, .. } => nodes.as_slice(),
        };
        let mut last = None;
        for node in nodes {
            match tokio::time::timeout(connect, node.get_async_pubsub()).await {
                Ok(Ok(pubsub)) => return Ok(pubsub),
                Ok(Err(err)) => last = Some(err),
                Err(_) => last = Some(timed_out()),
            }
        }
        Err(last.unwrap_or_else(timed_out))
    }
}

/// A Cluster client whose commands each have `timing.response` (the crate
/// fixes a command's overall deadline when the client is built).
fn cluster_client(
    urls: &[String],
    ca: Option<&[u8]>,
    timing: Timing,
) -> RedisResult<ClusterClient> {
    let mut builder = ClusterClient::builder(urls.iter().map(String::as_str))
        .connection_timeout(timing.connect)
        .response_timeout(timing.response)
        // As for one server: a request fails fast while a node is down,
        // after one more try (which also follows a moved slot).
        .retries(1)
        .max_retry_wait(500);
    if let Some(pem) = ca {
        builder = builder.certs(certificates(pem));
    }
    builder.build()
}

/// `pem` as the CA that signs the server's certificate (no client
/// certificate: mutual TLS is not supported).
fn certificates(pem: &[u8]) -> redis::TlsCertificates {
    redis::TlsCertificates {
        client_tls: None,
        root_cert: Some(pem.to_vec()),
    }
}

fn config(timing: Timing) -> ClusterConfig {
    ClusterConfig::new()
        .set_connection_timeout(timing.connect)
        .set_response_timeout(timing.response)
}

pub fn timed_out() -> redis::RedisError {
    redis::RedisError::from(std::io::Error::from(std::io::ErrorKind::TimedOut))
}
