//! Client API keys (`[auth]`): who may use the proxy, and who a request is
//! for the limits ([`ClientKey`]: its key, or its address).
//!
//! A key comes as `Authorization: Bearer KEY` (what OpenAI clients send) or
//! `x-api-key: KEY` (what Anthropic-style clients send). Keys are compared as
//! SHA-256 digests in constant time, so neither a key's content nor its length
//! leaks through timing. The keys themselves are never logged or echoed.

use std::net::IpAddr;

use axum::http::header::AUTHORIZATION;
use axum::http::HeaderMap;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::error::{ApiError, ErrorKind};

/// The configured keys, as digests.
pub struct Keys {
    digests: Vec<[u8; 32]>,
}

/// Which configured key a request presented (its position in the config).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct KeyId(pub usize);

/// Who a request counts against.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ClientKey {
    /// The API key it presented, when auth is on.
    Key(KeyId),
    /// Its address otherwise.
    Addr(IpAddr),
    /// Neither is known (the app served without connection info, in tests).
    Unknown,
}

impl ClientKey {
    /// The client as the shared store names it: the same on every replica
    /// (a key by its fingerprint, never by its place in the config).
    pub fn shared_name(self, keys: &Keys) -> String {
        match self {
            ClientKey::Key(key) => format!("k{}", keys.fingerprint(key)),
            ClientKey::Addr(addr) => format!("a{addr}"),
            ClientKey::Unknown => "u".to_owned(),
        }
    }
}

impl Keys {
    pub fn new(keys: &[String]) -> Keys {
        Keys {
            digests: keys.iter().map(|k| digest(k)).collect(),
        }
    }

    /// A stable name for a key that is neither the key nor its digest
    /// (replicas with the same keys give it the same name, whatever their
    /// order): whose a generation is, and whose limits, in the shared store.
    pub fn fingerprint(&self, key: KeyId) -> String {
        let Some(known) = self.digests.get(key.0) else {
            return String::new();
        };
        let mut hasher = Sha256::new();
        hasher.update(b"sluice key fingerprint\0");
        hasher.update(known);
        hasher.finalize()[..12]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }

    /// Auth is on when any key is configured.
    pub fn enabled(&self) -> bool {
        !self.digests.is_empty()
    }

    /// The key a request presents, checked. Every configured key is compared,
    /// match or not, so the time taken does not say which one matched.
    pub fn check(&self, headers: &HeaderMap) -> Result<KeyId, ApiError> {
        let presented = presented_key(headers).ok_or_else(|| {
            ApiError::new(
                ErrorKind::Unauthorized,
                "missing API key: send `Authorization: Bearer <key>` or `x-api-key: <key>`",
            )
        })?;
        let presented = digest(presented);
        let mut found = None;
        for (i, known) in self.digests.iter().enumerate() {
            if bool::from(known.ct_eq(&presented)) {
                found = Some(KeyId(i));
            }
        }
        found.ok_or_else(|| ApiError::new(ErrorKind::Unauthorized, "invalid API key"))
    }
}

fn presented_key(headers: &HeaderMap) -> Option<&str> {
    let bearer = headers
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            let (scheme, token) = v.trim().split_once(' ')?;
            scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
        });
    bearer
        .or_else(|| {
            headers
                .get("x-api-key")
                .and_then(|v| v.to_str().ok())
                .map(str::trim)
        })
        .filter(|k| !k.is_empty())
}

fn digest(key: &str) -> [u8; 32] {
    Sha256::digest(key.as_bytes()).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(name: &str, value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(
            axum::http::HeaderName::from_bytes(name.as_bytes()).unwrap(),
            value.parse().unwrap(),
        );
        headers
    }

    #[test]
    fn both_header_forms_are_accepted_and_identify_the_key() {
        let keys = Keys::new(&["sk-one".into(), "sk-two".into()]);
        assert_eq!(
            keys.check(&headers("authorization", "Bearer sk-two")),
            Ok(KeyId(1))
        );
        assert_eq!(
            keys.check(&headers("authorization", "bearer  sk-one ")),
            Ok(KeyId(0))
        );
        assert_eq!(keys.check(&headers("x-api-key", "sk-one")), Ok(KeyId(0)));
    }

    #[test]
    fn wrong_missing_and_malformed_keys_are_unauthorized() {
        let keys = Keys::new(&["sk-one".into()]);
        for h in [
            headers("authorization", "Bearer sk-on"),
            headers("authorization", "Basic sk-one"),
            headers("authorization", "Bearer "),
            headers("x-api-key", "sk-one-and-more"),
            HeaderMap::new(),
        ] {
            let err = keys.check(&h).unwrap_err();
            assert_eq!(err.kind, ErrorKind::Unauthorized);
            assert!(!err.message.contains("sk-one"), "{}", err.message);
        }
    }
}
