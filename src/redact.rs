//! Scrubbing secrets out of text that came from an upstream or a transport
//! error before it reaches a client or a log.
//!
//! Upstreams echo keys back ("Incorrect API key provided: sk-..."), and
//! transport errors print URLs, which may hold credentials. Every message built
//! from upstream text passes through [`Redactor::scrub`]: the configured keys
//! are removed verbatim, and anything shaped like a key, a bearer token or URL
//! credentials is removed by pattern.

use std::sync::LazyLock;

use regex::Regex;

const REDACTED: &str = "[redacted]";

static PATTERNS: LazyLock<Vec<(Regex, &'static str)>> = LazyLock::new(|| {
    [
        // user:password@ in URLs
        (r"(?i)\b([a-z][a-z0-9+.-]*://)[^/\s:@]+:[^/\s@]*@", "${1}[redacted]@"),
        // OpenAI/Anthropic-style keys: sk-..., sk-ant-..., rk-..., pk-...
        (r"\b(?:sk|rk|pk)-[A-Za-z0-9_\-]{8,}", REDACTED),
        // Groq gsk_, Hugging Face hf_, xAI xai-, OpenRouter sk-or- (above),
        // Google AIza..., AWS access key ids AKIA/ASIA...
        (r"\b(?:gsk_|hf_|xai-)[A-Za-z0-9_\-]{16,}", REDACTED),
        (r"\bAIza[0-9A-Za-z_\-]{35}", REDACTED),
        (r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b", REDACTED),
        (r"(?i)\b(bearer\s+)[A-Za-z0-9._~+/=\-]{8,}", "${1}[redacted]"),
        (
            r#"(?i)\b((?:api[_-]?key|x-api-key|token|secret|password)["']?\s*[:=]\s*["']?)[A-Za-z0-9._~+/\-]{6,}"#,
            "${1}[redacted]",
        ),
    ]
    .into_iter()
    .map(|(pattern, replacement)| (Regex::new(pattern).expect("a valid pattern"), replacement))
    .collect()
});

/// Removes known secrets and secret-shaped strings from text.
#[derive(Debug, Clone, Default)]
pub struct Redactor {
    secrets: Vec<String>,
}

impl Redactor {
    /// A redactor for these exact secrets (and the generic patterns).
    pub fn new(secrets: impl IntoIterator<Item = String>) -> Redactor {
        Redactor {
            secrets: secrets.into_iter().filter(|s| s.len() >= 4).collect(),
        }
    }

    pub fn scrub(&self, text: &str) -> String {
        let mut out = text.to_owned();
        for secret in &self.secrets {
            if out.contains(secret.as_str()) {
                out = out.replace(secret.as_str(), REDACTED);
            }
        }
        for (pattern, replacement) in PATTERNS.iter() {
            out = pattern.replace_all(&out, *replacement).into_owned();
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn removes_configured_and_key_shaped_secrets() {
        let redactor = Redactor::new(["hunter2-upstream".to_string()]);
        let text =
            "key hunter2-upstream rejected; Incorrect API key provided: sk-proj-abcdef123456. \
                    see http://bob:pa55@example.test/v1 with Authorization: Bearer abc.def.ghi123";
        let out = redactor.scrub(text);
        for secret in [
            "hunter2-upstream",
            "sk-proj-abcdef123456",
            "pa55",
            "abc.def.ghi123",
        ] {
            assert!(!out.contains(secret), "{secret} leaked in {out}");
        }
        assert!(out.contains("http://[redacted]@example.test/v1"), "{out}");
        let others = "gsk_8aBcDeFgHiJkLmNoPqRsTu hf_AbCdEfGhIjKlMnOpQrStUv \
                      xai-AbCdEfGhIjKlMnOpQrStUvWx AIzaSyA1b2C3d4E5f6G7h8I9j0KlMnOpQrStUvW \
                      AKIAIOSFODNN7EXAMPLE";
        let scrubbed = Redactor::default().scrub(others);
        assert_eq!(scrubbed.matches(REDACTED).count(), 5, "{scrubbed}");
    }
}
