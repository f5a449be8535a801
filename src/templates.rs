//! Prompt templates (section 5 of the contract): `prompts/NAME.md` is
//! template `NAME`, so the system prompt and the prompt's wording stay on the
//! server and the browser only sends variables.
//!
//! A file may open with TOML front matter between `+++` lines:
//!
//! ```text
//! +++
//! description = "Summarise a text for an audience"
//! system = "You are a careful editor."
//! model = "mock"
//! +++
//! Summarise this for a {{ audience }}:
//!
//! {{ prompt }}
//! ```
//!
//! The body is rendered with minijinja, strict about undefined values: a
//! variable the template uses and the request does not give is a 400 naming
//! it (`{% if x is defined %}` makes a variable optional). The rendered text becomes the user message; the template's `system`
//! wins over the request's; its `model` is the default model.
//!
//! The directory is read at start-up and again whenever it changes (a poll of
//! the files' sizes and modification times, once a second) or on SIGHUP. A
//! file that does not parse is logged and left out; the others keep serving.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use minijinja::{Environment, UndefinedBehavior};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::error::ApiError;
use crate::watched::{files, fingerprint, Fingerprint};

/// A template's file extension.
const EXTENSION: &str = "md";

/// What the front matter may say.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Meta {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(skip_serializing)]
    pub system: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
}

/// A rendered template, ready to become a conversation.
#[derive(Debug, PartialEq)]
pub struct Rendered {
    pub user_message: String,
    pub system: Option<String>,
    pub model: Option<String>,
}

/// One snapshot of the directory.
struct Library {
    env: Environment<'static>,
    meta: BTreeMap<String, Meta>,
    fingerprint: Fingerprint,
}

/// The templates, reloadable while requests read them.
pub struct Templates {
    dir: PathBuf,
    current: RwLock<Arc<Library>>,
}

impl Templates {
    pub fn load(dir: &Path) -> Templates {
        Templates {
            dir: dir.to_owned(),
            current: RwLock::new(Arc::new(Library::read(dir))),
        }
    }

    fn library(&self) -> Arc<Library> {
        self.current.read().expect("templates lock").clone()
    }

    /// Re-reads the directory if any file changed; true if it did.
    pub fn reload_if_changed(&self) -> bool {
        if fingerprint(&self.dir, EXTENSION) == self.library().fingerprint {
            return false;
        }
        self.reload();
        true
    }

    pub fn reload(&self) {
        let library = Library::read(&self.dir);
        tracing::info!(dir = %self.dir.display(), templates = library.meta.len(), "prompt templates loaded");
        *self.current.write().expect("templates lock") = Arc::new(library);
    }

    /// Names and front matter, sorted by name.
    pub fn list(&self) -> Vec<(String, Meta)> {
        let library = self.library();
        library
            .meta
            .iter()
            .map(|(n, m)| (n.clone(), m.clone()))
            .collect()
    }

    /// Renders template `name` with the request's `vars` and `prompt`.
    pub fn render(
        &self,
        name: &str,
        prompt: Option<&str>,
        vars: &Map<String, Value>,
    ) -> Result<Rendered, ApiError> {
        let library = self.library();
        let (Some(meta), Ok(template)) = (library.meta.get(name), library.env.get_template(name))
        else {
            return Err(ApiError::not_found(
                "template",
                format!("template `{name}` is not found in the prompts directory"),
            ));
        };
        let mut context = vars.clone();
        if let Some(prompt) = prompt {
            context.insert("prompt".into(), Value::from(prompt));
        }
        let user_message = template.render(&context).map_err(|err| {
            // minijinja says a value was undefined but not which; the
            // template's free variables that the request lacks say which.
            let mut needed: Vec<String> = template.undeclared_variables(false).into_iter().collect();
            needed.sort();
            match needed.iter().find(|v| !context.contains_key(*v)) {
                Some(missing) if err.kind() == minijinja::ErrorKind::UndefinedError => {
                    let (param, hint) = if missing == "prompt" {
                        ("prompt".to_owned(), "give `prompt`")
                    } else {
                        (format!("vars.{missing}"), "add it to `vars`")
                    };
                    ApiError::invalid(
                        param,
                        format!("template `{name}` uses variable `{missing}`, which the request does not give: {hint}"),
                    )
                }
                _ => ApiError::invalid("vars", format!("template `{name}` could not be rendered: {err}")),
            }
        })?;
        Ok(Rendered {
            user_message,
            system: meta.system.clone(),
            model: meta.model.clone(),
        })
    }
}

impl Library {
    fn read(dir: &Path) -> Library {
        // Taken before the files are read: an edit that lands while they are
        // read then differs from it, and the next check reloads.
        let seen = fingerprint(dir, EXTENSION);
        let mut env = Environment::new();
        env.set_undefined_behavior(UndefinedBehavior::Strict);
        // Prompts are plain text: no HTML escaping, and keep the last newline as written.
        env.set_auto_escape_callback(|_| minijinja::AutoEscape::None);
        env.set_keep_trailing_newline(true);
        let mut meta = BTreeMap::new();
        for path in files(dir, EXTENSION) {
            let Some(name) = path.file_stem().and_then(|s| s.to_str()).map(str::to_owned) else {
                continue;
            };
            match parse_file(&path).and_then(|(m, body)| {
                env.add_template_owned(name.clone(), body)
                    .map_err(|e| e.to_string())?;
                Ok(m)
            }) {
                Ok(m) => {
                    meta.insert(name, m);
                }
                Err(why) => {
                    tracing::warn!(file = %path.display(), "prompt template left out: {why}")
                }
            }
        }
        Library {
            env,
            meta,
            fingerprint: seen,
        }
    }
}

/// `+++` front matter, then the body.
fn parse_file(path: &Path) -> Result<(Meta, String), String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read it: {e}"))?;
    split_front_matter(&text)
}

pub fn split_front_matter(text: &str) -> Result<(Meta, String), String> {
    let Some(rest) = text
        .strip_prefix("+++\n")
        .or_else(|| text.strip_prefix("+++\r\n"))
    else {
        return Ok((Meta::default(), text.to_owned()));
    };
    let mut offset = 0;
    for line in rest.split_inclusive('\n') {
        if line.trim_end() == "+++" {
            let meta = toml::from_str(&rest[..offset]).map_err(|e| format!("front matter: {e}"))?;
            return Ok((meta, rest[offset + line.len()..].to_owned()));
        }
        offset += line.len();
    }
    Err("front matter opened with +++ is never closed".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn front_matter_is_optional_and_parsed_when_present() {
        let (meta, body) =
            split_front_matter("+++\ndescription = \"d\"\nsystem = \"s\"\n+++\nHello {{ name }}\n")
                .unwrap();
        assert_eq!(meta.description.as_deref(), Some("d"));
        assert_eq!(meta.system.as_deref(), Some("s"));
        assert_eq!(body, "Hello {{ name }}\n");
        let (meta, body) = split_front_matter("Just {{ prompt }}").unwrap();
        assert!(meta.description.is_none());
        assert_eq!(body, "Just {{ prompt }}");
        assert!(split_front_matter("+++\ndescription = \"d\"\n").is_err());
        assert!(split_front_matter("+++\nunknown = 1\n+++\nx").is_err());
    }
}
