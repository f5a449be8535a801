//! The checks a config needs beyond its types: names that must exist,
//! values that must be at least 1, origins, URLs, and the secrets read from
//! the environment. Each failure is a [`ConfigError`] naming its key.

use super::{Config, ConfigError};

impl Config {
    /// The config, checked, with model secrets read through `env`.
    pub(super) fn validated(
        mut self,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Config, ConfigError> {
        if !self.models.iter().any(|m| m.name == self.default_model) {
            return Err(error(
                "default_model",
                format!("no model named `{}` is configured", self.default_model),
            ));
        }
        self.validate_durations()?;
        self.validate_limits()?;
        self.resolve_auth(&env)?;
        self.validate_cors()?;
        self.validate_store()?;
        if let Some(endpoint) = &self.telemetry.otlp_endpoint {
            if reqwest::Url::parse(endpoint)
                .map_or(true, |url| !matches!(url.scheme(), "http" | "https"))
            {
                return Err(error(
                    "telemetry.otlp_endpoint",
                    "expected the collector's OTLP/HTTP URL, such as \"http://127.0.0.1:4318\"",
                ));
            }
        }
        if let Some(tls) = &self.tls {
            // Read now, so that a bad file stops start-up naming its key.
            crate::tls::server_config(&tls.cert_file, &tls.key_file).map_err(|err| match err {
                crate::tls::TlsError::Cert(message) => error("tls.cert_file", message),
                crate::tls::TlsError::Key(message) => error("tls.key_file", message),
            })?;
        }
        self.validate_models(&env)?;
        Ok(self)
    }

    fn validate_store(&self) -> Result<(), ConfigError> {
        if let Some(url) = &self.store.redis_url {
            let tls = redis_url("store.redis_url", url)?;
            if let (false, Some(_)) = (tls, &self.store.ca_file) {
                return Err(error(
                    "store.ca_file",
                    "only applies to a rediss:// (TLS) store.redis_url",
                ));
            }
            for (i, node) in self
                .store
                .cluster
                .seeds()
                .unwrap_or_default()
                .iter()
                .enumerate()
            {
                let key = format!("store.cluster[{i}]");
                if redis_url(&key, node)? != tls {
                    return Err(error(
                        key,
                        "must use the same scheme (redis:// or rediss://) as store.redis_url",
                    ));
                }
            }
        } else if self.store.cluster.seeds().is_some() {
            return Err(error(
                "store.cluster",
                "needs store.redis_url, the URL of one of the cluster's nodes",
            ));
        }
        if let Some(file) = &self.store.ca_file {
            let pem = std::fs::read(file).map_err(|err| {
                error(
                    "store.ca_file",
                    format!("cannot read {}: {err}", file.display()),
                )
            })?;
            if !String::from_utf8_lossy(&pem).contains("-----BEGIN CERTIFICATE-----") {
                return Err(error(
                    "store.ca_file",
                    format!("{} holds no PEM certificate", file.display()),
                ));
            }
        }
        let prefix = &self.store.key_prefix;
        // Braces would make the prefix a Redis Cluster hash tag, and put
        // every key in one slot.
        if prefix.is_empty()
            || prefix
                .contains(|c: char| c.is_whitespace() || c.is_control() || c == '{' || c == '}')
        {
            return Err(error(
                "store.key_prefix",
                "must be a non-empty name without spaces or braces",
            ));
        }
        Ok(())
    }

    fn validate_cors(&self) -> Result<(), ConfigError> {
        for (i, origin) in self.cors.allow_origins.iter().enumerate() {
            if origin != "*" && origin != super::LOOPBACK && !is_origin(origin) {
                return Err(error(
                    format!("cors.allow_origins[{i}]"),
                    format!(
                        "`{origin}` is not an origin such as \"http://localhost:5173\" (or \"loopback\", or \"*\")"
                    ),
                ));
            }
        }
        for (i, host) in self.cors.allowed_hosts.iter().flatten().enumerate() {
            if host.is_empty() || host.contains(['/', ' ', '@']) {
                return Err(error(
                    format!("cors.allowed_hosts[{i}]"),
                    format!("`{host}` is not a host such as \"sluice.internal\""),
                ));
            }
        }
        Ok(())
    }

    /// Names, fallbacks, knobs, URLs and keys of every `[[models]]` entry;
    /// fills in each upstream's default `base_url` and its key.
    fn validate_models(
        &mut self,
        env: &impl Fn(&str) -> Option<String>,
    ) -> Result<(), ConfigError> {
        let names: Vec<String> = self.models.iter().map(|m| m.name.clone()).collect();
        let recording = self.record.dir.is_some();
        for (i, model) in self.models.iter_mut().enumerate() {
            let key = |field: &str| format!("models[{i}].{field}");
            if names.iter().filter(|n| **n == model.name).count() > 1 {
                return Err(error(
                    key("name"),
                    format!("model `{}` is defined twice", model.name),
                ));
            }
            if let Some(Err(err)) = super::name_pattern(&model.name) {
                return Err(error(
                    key("name"),
                    format!(
                        "`{}` is not a valid glob pattern: {}",
                        model.name,
                        err.kind()
                    ),
                ));
            }
            if let Some(fallback) = model.fallbacks.iter().find(|f| !names.contains(f)) {
                return Err(error(
                    key("fallbacks"),
                    format!("no model named `{fallback}` is configured"),
                ));
            }
            if model.fallbacks.contains(&model.name) {
                return Err(error(
                    key("fallbacks"),
                    "a model cannot fall back to itself",
                ));
            }
            if let Some(attempts) = model.midstream_attempts.filter(|n| !(1..=5).contains(n)) {
                return Err(error(
                    key("midstream_attempts"),
                    format!("must be between 1 and 5, not {attempts}"),
                ));
            }
            if model.hedge_after_ms == Some(0) {
                return Err(error(
                    key("hedge_after_ms"),
                    "must be at least 1 (leave it out for no hedging)",
                ));
            }
            if model.hedge_after_ms.is_some() && model.fallbacks.is_empty() {
                return Err(error(
                    key("hedge_after_ms"),
                    "a hedge goes to the first of `fallbacks`, and there are none",
                ));
            }
            let knobs = model.mock_knobs();
            knobs
                .validate()
                .map_err(|bad| error(key(&bad.field), bad.message))?;
            if let Some(default_url) = model.provider.default_base_url() {
                if !knobs.is_empty() {
                    return Err(error(
                        key("provider"),
                        "mock knobs (ttft_ms, text, ...) only apply to provider \"mock\"",
                    ));
                }
                let base_url = model.base_url.get_or_insert_with(|| default_url.into());
                if reqwest::Url::parse(base_url).is_err() {
                    return Err(error(key("base_url"), format!("`{base_url}` is not a URL")));
                }
            }
            if model.passthrough.is_some() && model.provider != super::ProviderKind::Openai {
                return Err(error(
                    key("passthrough"),
                    "only applies to provider \"openai\" (the others are sent no client fields)",
                ));
            }
            check_recording(model, recording)
                .map_err(|(field, message)| error(key(field), message))?;
            if model.default_max_tokens == Some(0) {
                return Err(error(key("default_max_tokens"), "must be at least 1"));
            }
            if let Some(var) = &model.api_key_env {
                match env(var) {
                    Some(value) if !value.is_empty() => model.api_key = Some(value),
                    _ => {
                        return Err(error(
                            key("api_key_env"),
                            format!("environment variable {var} is not set"),
                        ));
                    }
                }
            }
        }
        Ok(())
    }

    /// Every duration within bounds: a value near `u64::MAX` would overflow
    /// the clock arithmetic of every stream, and zero means "at once" where
    /// that makes no sense.
    fn validate_durations(&self) -> Result<(), ConfigError> {
        const HOUR_SECS: u64 = 3_600;
        const DAY_MS: u64 = 86_400_000;
        const WEEK_SECS: u64 = 7 * 86_400;
        let t = &self.timeouts;
        let s = &self.streams;
        // (key, value, least, most)
        let bounds = [
            ("heartbeat_secs", self.heartbeat_secs, 1, HOUR_SECS),
            (
                "shutdown_grace_secs",
                self.shutdown_grace_secs,
                0,
                HOUR_SECS,
            ),
            (
                "shutdown_delay_secs",
                self.shutdown_delay_secs,
                0,
                HOUR_SECS,
            ),
            ("timeouts.connect_ms", t.connect_ms, 1, DAY_MS),
            ("timeouts.first_token_ms", t.first_token_ms, 1, DAY_MS),
            ("timeouts.idle_ms", t.idle_ms, 1, DAY_MS),
            ("timeouts.total_ms", t.total_ms, 1, DAY_MS),
            (
                "streams.reconnect_grace_ms",
                s.reconnect_grace_ms,
                0,
                DAY_MS,
            ),
            ("streams.abandon_ms", s.abandon_ms, 1, DAY_MS),
            ("streams.retain_secs", s.retain_secs, 0, WEEK_SECS),
            (
                "limits.header_timeout_ms",
                self.limits.header_timeout_ms,
                1,
                DAY_MS,
            ),
            (
                "limits.send_timeout_ms",
                self.limits.send_timeout_ms,
                1,
                DAY_MS,
            ),
            (
                "limits.idle_connection_ms",
                self.limits.idle_connection_ms,
                1,
                DAY_MS,
            ),
        ];
        for (key, value, least, most) in bounds {
            if value < least {
                return Err(error(key, format!("must be at least {least}")));
            }
            if value > most {
                return Err(error(key, format!("must be at most {most}")));
            }
        }
        Ok(())
    }

    fn validate_limits(&self) -> Result<(), ConfigError> {
        let limits = &self.limits;
        let checks = [
            ("limits.max_body_bytes", limits.max_body_bytes == 0),
            (
                "limits.max_concurrent_streams",
                limits.max_concurrent_streams == 0,
            ),
            (
                "limits.per_client_concurrent_streams",
                limits.per_client_concurrent_streams == 0,
            ),
            (
                "limits.burst",
                limits.requests_per_second > 0 && limits.burst == 0,
            ),
            ("streams.max_log_bytes", self.streams.max_log_bytes == 0),
            ("limits.max_connections", limits.max_connections == 0),
        ];
        match checks.into_iter().find(|(_, bad)| *bad) {
            Some((key, _)) => Err(error(key, "must be at least 1")),
            None => Ok(()),
        }
    }

    /// Adds the keys from `auth.api_keys_env`; empty keys are refused, since
    /// an empty bearer token would then open the door.
    fn resolve_auth(&mut self, env: &impl Fn(&str) -> Option<String>) -> Result<(), ConfigError> {
        if let Some(var) = &self.auth.api_keys_env {
            let Some(value) = env(var) else {
                return Err(error(
                    "auth.api_keys_env",
                    format!("environment variable {var} is not set"),
                ));
            };
            let keys: Vec<String> = value
                .split(',')
                .map(str::trim)
                .filter(|k| !k.is_empty())
                .map(str::to_owned)
                .collect();
            if keys.is_empty() {
                return Err(error(
                    "auth.api_keys_env",
                    format!("environment variable {var} holds no keys"),
                ));
            }
            self.auth.api_keys.extend(keys);
        }
        if let Some(i) = self.auth.api_keys.iter().position(|k| k.trim().is_empty()) {
            return Err(error(format!("auth.api_keys[{i}]"), "must not be empty"));
        }
        Ok(())
    }
}

/// `scheme://host[:port]` with nothing after it, as browsers send `Origin`.
fn is_origin(text: &str) -> bool {
    match reqwest::Url::parse(text) {
        Ok(url) => {
            url.has_host()
                && url.path() == "/"
                && !text.ends_with('/')
                && url.query().is_none()
                && axum::http::HeaderValue::from_str(text).is_ok()
        }
        Err(_) => false,
    }
}

/// A problem with `key`; the file is named by [`Config::load`].
fn error(key: impl Into<String>, message: impl Into<String>) -> ConfigError {
    ConfigError {
        file: None,
        key: key.into(),
        message: message.into(),
    }
}

/// `record`, and a `replay` route's `dir`, `fallback` and `speed`: the
/// field at fault and why.
fn check_recording(
    model: &super::ModelConfig,
    recording: bool,
) -> Result<(), (&'static str, String)> {
    let replay = model.provider == super::ProviderKind::Replay;
    if model.record && !recording {
        return Err((
            "record",
            "needs `[record] dir`, where the recordings go".into(),
        ));
    }
    if model.record && replay {
        return Err(("record", "a replay route records nothing".into()));
    }
    if replay && model.dir.is_none() {
        return Err((
            "dir",
            "provider \"replay\" needs `dir`, the directory of recordings it answers from".into(),
        ));
    }
    for (field, set) in [
        ("dir", model.dir.is_some()),
        ("fallback", model.fallback.is_some()),
        ("speed", model.speed.is_some()),
    ] {
        if set && !replay {
            return Err((field, "only applies to provider \"replay\"".into()));
        }
    }
    if model.fallback.as_deref().is_some_and(|f| f != "mock") {
        return Err((
            "fallback",
            "the only fallback of a replay route is \"mock\"".into(),
        ));
    }
    if model.speed.is_some_and(|s| !s.is_finite() || s < 0.0) {
        return Err(("speed", "must be a number of 0 or more".into()));
    }
    Ok(())
}

/// Checks one Redis URL with the client's own parser (whose message never
/// repeats the URL, which may hold a password): whether it is TLS.
fn redis_url(key: &str, url: &str) -> Result<bool, ConfigError> {
    let tls = url.starts_with("rediss://");
    if !tls && !url.starts_with("redis://") && !url.starts_with("redis+unix://") {
        return Err(error(
            key,
            "expected a URL such as \"redis://127.0.0.1:6379\" (or rediss:// for TLS)",
        ));
    }
    if redis::Client::open(url).is_err() {
        return Err(error(
            key,
            "not a valid Redis URL (expected redis[s]://[USER:PASSWORD@]HOST:PORT[/DB])",
        ));
    }
    Ok(tls)
}
