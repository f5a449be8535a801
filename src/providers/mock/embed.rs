//! The mock's embeddings: deterministic unit vectors from a hashed bag of
//! words, so the same text always gives the same vector and texts that share
//! words are closer (by cosine) than texts that share none, which is what a
//! RAG demo's retrieval step needs to look sensible.
//!
//! Each lowercased word adds ±1 at [`SPREAD`] places picked by its hash
//! (FNV-1a, written here: four lines, stable across Rust versions, unlike
//! `std`'s hasher); the sum is scaled to length 1. A text with no word gets
//! the first axis.

use crate::generation::{EmbedRequest, Embedded};
use crate::tokenizer;

/// The vectors' length when the request names none: OpenAI's
/// `text-embedding-3-small`'s, which apps and vector stores often assume.
pub const DEFAULT_DIMENSIONS: usize = 1536;
/// How many places of the vector each word marks.
const SPREAD: u64 = 4;

pub fn embed(request: &EmbedRequest) -> Embedded {
    let dimensions = request.dimensions.unwrap_or(DEFAULT_DIMENSIONS).max(1);
    Embedded {
        vectors: request
            .input
            .iter()
            .map(|text| vector(text, dimensions))
            .collect(),
        prompt_tokens: request
            .input
            .iter()
            .map(|text| tokenizer::count(text))
            .sum(),
    }
}

/// The unit vector of `text`.
pub fn vector(text: &str, dimensions: usize) -> Vec<f32> {
    let mut sums = vec![0f32; dimensions];
    for word in text
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
    {
        let word = word.to_lowercase();
        for salt in 0..SPREAD {
            let hash = fnv1a(word.as_bytes(), salt);
            let at = (hash % dimensions as u64) as usize;
            sums[at] += if hash >> 63 == 1 { 1.0 } else { -1.0 };
        }
    }
    let length = sums.iter().map(|x| x * x).sum::<f32>().sqrt();
    if length == 0.0 {
        sums[0] = 1.0;
        return sums;
    }
    sums.iter_mut().for_each(|x| *x /= length);
    sums
}

fn fnv1a(bytes: &[u8], salt: u64) -> u64 {
    let start = 0xcbf2_9ce4_8422_2325u64 ^ salt.wrapping_mul(0x9e37_79b9_7f4a_7c15);
    bytes.iter().fold(start, |hash, byte| {
        (hash ^ u64::from(*byte)).wrapping_mul(0x0100_0000_01b3)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cosine(a: &[f32], b: &[f32]) -> f32 {
        a.iter().zip(b).map(|(x, y)| x * y).sum()
    }

    #[test]
    fn vectors_are_unit_deterministic_and_closer_for_shared_words() {
        let cat = vector("The cat sat on the mat", 256);
        assert_eq!(cat, vector("The cat sat on the mat", 256));
        let length: f32 = cat.iter().map(|x| x * x).sum::<f32>().sqrt();
        assert!((length - 1.0).abs() < 1e-5);
        let similar = vector("A cat sat on a mat", 256);
        let unrelated = vector("Quarterly revenue grew in Europe", 256);
        assert!(cosine(&cat, &similar) > 0.4, "{}", cosine(&cat, &similar));
        assert!(cosine(&cat, &similar) > cosine(&cat, &unrelated) + 0.3);
        assert_eq!(vector("", 8)[0], 1.0);
    }
}
