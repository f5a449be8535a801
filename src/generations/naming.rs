//! Names a client gives its generations, besides their ids: a chat UI's
//! chat id (the generation running for that chat) and an `Idempotency-Key`
//! (the generation a repeated request re-attaches to). Each is scoped by
//! owner, so one client cannot reach another's by guessing its name.
//!
//! [`Names`] is this process's table of one kind, both ways (a name's
//! generation, a generation's name), so that a generation leaving the
//! registry takes its name with it; with `[store]`, [`Name`] is what the
//! `Remote` port keeps in Redis for the other replicas.

use std::collections::HashMap;

use super::id::Owner;

/// What a name names a generation as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NameKind {
    /// A chat UI door's chat id: the generation running for the chat.
    Chat,
    /// An `Idempotency-Key`: the generation a request with it started,
    /// with the digest of that request's body.
    IdempotencyKey,
}

impl NameKind {
    /// Its part of a store key.
    pub fn as_str(self) -> &'static str {
        match self {
            NameKind::Chat => "chat",
            NameKind::IdempotencyKey => "idem",
        }
    }
}

/// A request's `Idempotency-Key` and the digest of what it asked (its
/// path and body): what a repeat must match to re-attach.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Keyed {
    pub key: String,
    pub digest: String,
}

/// One name, as the store keeps it.
#[derive(Debug, Clone, Copy)]
pub struct Name<'a> {
    pub kind: NameKind,
    pub owner: Owner,
    pub name: &'a str,
}

/// A generation under a name, with a tag the namer keeps beside it (the
/// body digest of an idempotent request).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Named {
    pub id: String,
    pub tag: String,
}

impl Named {
    /// As the store keeps it: `TAG ID` (a tag has no space).
    pub fn encode(&self) -> String {
        format!("{} {}", self.tag, self.id)
    }

    pub fn decode(value: &str) -> Option<Named> {
        let (tag, id) = value.rsplit_once(' ').unwrap_or(("", value));
        (!id.is_empty()).then(|| Named {
            id: id.to_owned(),
            tag: tag.to_owned(),
        })
    }
}

/// One kind of name, in this process.
#[derive(Default)]
pub struct Names {
    named: HashMap<(Owner, String), Named>,
    name_of: HashMap<String, (Owner, String)>,
}

impl Names {
    /// Names `named.id`; a later one under the same name replaces it.
    pub fn insert(&mut self, owner: Owner, name: &str, named: Named) {
        let key = (owner, name.to_owned());
        self.name_of.insert(named.id.clone(), key.clone());
        if let Some(previous) = self.named.insert(key, named) {
            self.name_of.remove(&previous.id);
        }
    }

    pub fn get(&self, owner: Owner, name: &str) -> Option<&Named> {
        self.named.get(&(owner, name.to_owned()))
    }

    /// Generation `id` is gone: so is its name.
    pub fn forget(&mut self, id: &str) {
        if let Some(key) = self.name_of.remove(id) {
            self.named.remove(&key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_name_goes_with_its_generation_and_a_later_one_replaces_it() {
        let mut names = Names::default();
        let named = |id: &str| Named {
            id: id.into(),
            tag: String::new(),
        };
        names.insert(None, "chat", named("gen_a"));
        names.insert(None, "chat", named("gen_b"));
        names.forget("gen_a");
        assert_eq!(names.get(None, "chat"), Some(&named("gen_b")));
        names.forget("gen_b");
        assert_eq!(names.get(None, "chat"), None);
        assert_eq!(
            Named::decode("d1g35t gen_x"),
            Some(Named {
                id: "gen_x".into(),
                tag: "d1g35t".into()
            })
        );
        assert_eq!(Named::decode("gen_x").unwrap().tag, "");
    }
}
