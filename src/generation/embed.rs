//! What an embeddings request asks a provider for (`POST /v1/embeddings`,
//! contract section 13), and what it answers.

use serde_json::{Map, Value};

/// The texts to embed, already validated by the door.
#[derive(Debug, Clone, Default)]
pub struct EmbedRequest {
    /// One text per vector wanted.
    pub input: Vec<String>,
    /// The vectors' length, when the client chose it.
    pub dimensions: Option<usize>,
    /// The client's body as it came, for an OpenAI-compatible upstream.
    pub raw: Map<String, Value>,
}

/// One vector per input, in order, and the tokens the inputs counted.
#[derive(Debug, Clone, PartialEq)]
pub struct Embedded {
    pub vectors: Vec<Vec<f32>>,
    pub prompt_tokens: u32,
}
