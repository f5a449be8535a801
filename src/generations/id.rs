//! Generation ids, and the `GEN:N` frame ids built from them.

use std::fmt;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;

/// `gen_` and 22 URL-safe characters: 122 random bits from the operating
/// system (a v4 UUID's), so an id cannot be guessed from another.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct GenId(String);

impl GenId {
    pub fn random() -> GenId {
        let bytes = uuid::Uuid::new_v4().into_bytes();
        GenId(format!("gen_{}", URL_SAFE_NO_PAD.encode(bytes)))
    }

    /// An id this replica did not make, as the shared store keeps it (it
    /// came from a client as a `gen_` id and was found there).
    pub fn known(id: &str) -> GenId {
        GenId(id.to_owned())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for GenId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A frame's SSE id, `GEN:N`: its generation and its index in the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventId {
    pub generation: String,
    pub index: u64,
}

impl EventId {
    /// `GEN:N`, or `None` for anything else (which a reconnect ignores).
    pub fn parse(text: &str) -> Option<EventId> {
        let (generation, index) = text.trim().rsplit_once(':')?;
        let random = generation.strip_prefix("gen_")?;
        let well_formed = !random.is_empty()
            && random
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if !well_formed || index.is_empty() || !index.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        Some(EventId {
            generation: generation.to_owned(),
            index: index.parse().ok()?,
        })
    }
}

/// Whose a generation is: the API key that made it, when auth is on. Any
/// other key finds nothing (a 404, as for an unknown id).
pub type Owner = Option<crate::auth::KeyId>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_gen_and_22_url_safe_characters_and_differ() {
        let (a, b) = (GenId::random(), GenId::random());
        assert_ne!(a, b);
        let random = a.as_str().strip_prefix("gen_").unwrap();
        assert_eq!(random.len(), 22);
        assert!(random
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_'));
    }

    #[test]
    fn event_ids_parse_only_in_the_gen_colon_index_form() {
        let id = GenId::random();
        assert_eq!(
            EventId::parse(&format!("{id}:12")),
            Some(EventId {
                generation: id.to_string(),
                index: 12
            })
        );
        for foreign in [
            "12",
            "abc:3",
            "gen_:3",
            "gen_x:",
            "gen_x:-1",
            "gen_x y:1",
            "gen_x:1e3",
            "",
        ] {
            assert_eq!(EventId::parse(foreign), None, "{foreign:?}");
        }
    }
}
