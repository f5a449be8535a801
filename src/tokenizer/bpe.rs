//! OpenAI's o200k_base BPE in a compact form: every token's bytes back to
//! back in one buffer, indexed by one open-addressing table of ranks.
//!
//! Why not `tiktoken-rs`'s `CoreBPE` as it is: it keeps three copies of the
//! vocabulary as maps and vectors of small heap buffers (200,000 tokens,
//! each a `Vec<u8>` of its own) and 128 copies of its compiled pattern, for
//! ~30 MiB of a process that otherwise idles at ~20 (BENCHMARKS.md, "Idle
//! memory"). Here the same vocabulary takes ~5 MiB. `tiktoken-rs` stays the
//! source of the vocabulary (it carries the file, so nothing is downloaded)
//! and of the pattern; its tables are built once at start, copied into these,
//! and dropped. The unit tests check this encoder against it token for token.
//!
//! What it may not do: encode special tokens (`<|endoftext|>`): sluice only
//! counts and cuts ordinary text.

use std::sync::LazyLock;

use fancy_regex::Regex;

/// A token's id in the vocabulary.
pub type Rank = u32;

pub struct Bpe {
    /// Every token's bytes, back to back, in rank order.
    bytes: Vec<u8>,
    /// Token `r` is `bytes[starts[r]..starts[r + 1]]`.
    starts: Vec<u32>,
    /// Open addressing by [`hash`]: `rank + 1` of a token, 0 for a free slot.
    index: Vec<u32>,
    /// The pre-tokenizer: text is cut at its matches before the merges.
    pattern: Regex,
}

/// o200k_base's pre-tokenizer, as OpenAI's tiktoken defines it (private in
/// `tiktoken-rs`, so repeated here; the tests hold the two encoders equal).
const O200K_PATTERN: &str = concat!(
    r"[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?",
    "|",
    r"[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?",
    "|",
    r"\p{N}{1,3}",
    "|",
    r" ?[^\s\p{L}\p{N}]+[\r\n/]*",
    "|",
    r"\s*[\r\n]+",
    "|",
    r"\s+(?!\S)",
    "|",
    r"\s+",
);

static O200K: LazyLock<Bpe> = LazyLock::new(Bpe::o200k_base);

/// The encoding, built on first use (`super::warm_up` does it at start).
pub fn o200k() -> &'static Bpe {
    &O200K
}

impl Bpe {
    fn o200k_base() -> Bpe {
        let source = tiktoken_rs::o200k_base().expect("tiktoken-rs's o200k_base loads");
        let mut bytes = Vec::with_capacity(1 << 21);
        let mut starts = vec![0u32];
        // Ordinary tokens have the ranks 0..n; the first rank that does not
        // decode is past them (special tokens come after a gap).
        let mut rank = 0;
        while let Ok(token) = source.decode_bytes(&[rank]) {
            bytes.extend_from_slice(&token);
            starts.push(u32::try_from(bytes.len()).expect("the vocabulary is under 4 GiB"));
            rank += 1;
        }
        drop(source);
        bytes.shrink_to_fit();
        let pattern = Regex::new(O200K_PATTERN).expect("o200k_base's pattern compiles");
        let mut bpe = Bpe {
            bytes,
            starts,
            index: Vec::new(),
            pattern,
        };
        bpe.index = vec![0; (bpe.len() * 2).next_power_of_two()];
        let mask = bpe.index.len() - 1;
        for rank in 0..bpe.len() as Rank {
            let mut slot = hash(bpe.token(rank)) & mask;
            while bpe.index[slot] != 0 {
                slot = (slot + 1) & mask;
            }
            bpe.index[slot] = rank + 1;
        }
        bpe
    }

    /// Tokens in the vocabulary.
    pub fn len(&self) -> usize {
        self.starts.len() - 1
    }

    /// The bytes of token `rank`.
    pub fn token(&self, rank: Rank) -> &[u8] {
        let rank = rank as usize;
        &self.bytes[self.starts[rank] as usize..self.starts[rank + 1] as usize]
    }

    /// The rank of the token whose bytes are `piece`, if there is one.
    fn rank(&self, piece: &[u8]) -> Option<Rank> {
        let mask = self.index.len() - 1;
        let mut slot = hash(piece) & mask;
        loop {
            let entry = self.index[slot];
            if entry == 0 {
                return None;
            }
            if self.token(entry - 1) == piece {
                return Some(entry - 1);
            }
            slot = (slot + 1) & mask;
        }
    }

    /// The tokens of `text`, as `CoreBPE::encode_ordinary` gives them.
    pub fn encode(&self, text: &str) -> Vec<Rank> {
        let mut tokens = Vec::new();
        for found in self.pattern.find_iter(text) {
            // The pattern has no construct that can fail at run time on
            // valid UTF-8 (its only look-around is one `(?!\S)`); a match
            // that did fail is counted byte by byte rather than lost.
            let piece = match found {
                Ok(found) => found.as_str().as_bytes(),
                Err(_) => continue,
            };
            match self.rank(piece) {
                Some(rank) => tokens.push(rank),
                None => self.merge(piece, &mut tokens),
            }
        }
        tokens
    }

    /// tiktoken's byte-pair merge of one piece that is not a token: the
    /// adjacent pair of lowest rank is merged until none is a token.
    fn merge(&self, piece: &[u8], out: &mut Vec<Rank>) {
        let rank_of = |range: std::ops::Range<usize>| self.rank(&piece[range]).unwrap_or(Rank::MAX);
        // (start of a part, rank of the part merged with the next one).
        let mut parts: Vec<(usize, Rank)> = (0..piece.len().saturating_sub(1))
            .map(|i| (i, rank_of(i..i + 2)))
            .collect();
        parts.push((piece.len().saturating_sub(1), Rank::MAX));
        parts.push((piece.len(), Rank::MAX));
        let merged_rank = |parts: &[(usize, Rank)], i: usize| match parts.get(i + 3) {
            Some(&(end, _)) => rank_of(parts[i].0..end),
            None => Rank::MAX,
        };
        // Plain loops, as tiktoken's: this runs once per merge, and debug
        // builds (the tests) pay for every iterator adapter.
        loop {
            let mut lowest = (Rank::MAX, 0);
            for (i, &(_, rank)) in parts[..parts.len() - 1].iter().enumerate() {
                if rank < lowest.0 {
                    lowest = (rank, i);
                }
            }
            if lowest.0 == Rank::MAX {
                break;
            }
            let i = lowest.1;
            if i > 0 {
                parts[i - 1].1 = merged_rank(&parts, i - 1);
            }
            parts[i].1 = merged_rank(&parts, i);
            parts.remove(i + 1);
        }
        out.extend(parts.windows(2).map(|pair| {
            self.rank(&piece[pair[0].0..pair[1].0])
                .expect("every byte is a token, so every part is")
        }));
    }
}

/// FNV-1a: short keys, and no attacker chooses the vocabulary.
fn hash(bytes: &[u8]) -> usize {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for &byte in bytes {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    hash as usize
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn it_encodes_as_tiktoken_does_token_for_token() {
        let oracle = tiktoken_rs::o200k_base_singleton();
        let texts = [
            "Hello, world! Naïve café — 🚀 日本語 `code` done.",
            "  leading spaces\n\n\ttabs\r\nand CRLF   trailing   ",
            "I'm sure they'll've DONE it; HE'S 12345678 years old!!!",
            "fn main() { println!(\"{}\", 1 + 2); } // ünïcödé",
            "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
            "🚀🚀🚀 👩‍👩‍👧‍👦 ❤️ العربية русский ελληνικά",
            "",
            " ",
            "a",
        ];
        let bpe = o200k();
        for text in texts {
            assert_eq!(bpe.encode(text), oracle.encode_ordinary(text), "{text:?}");
        }
        let prose = include_str!("../../README.md");
        assert_eq!(bpe.encode(prose), oracle.encode_ordinary(prose));
        for rank in [0, 1000, 199_997] {
            assert_eq!(bpe.token(rank), oracle.decode_bytes(&[rank]).unwrap());
        }
        assert_eq!(bpe.len(), 199_998);
    }
}
