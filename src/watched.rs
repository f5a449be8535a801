//! A directory of files a process reads at start and again when they
//! change (the prompt templates, the mock's scenarios): its files of one
//! extension, in name order, and a fingerprint of their sizes and
//! modification times, compared once a second by the server's poll.
//!
//! What it may not do: parse the files; each reader does.

use std::path::{Path, PathBuf};
use std::time::SystemTime;

/// The files' paths, sizes and modification times, in name order.
pub type Fingerprint = Vec<(PathBuf, u64, Option<SystemTime>)>;

/// The files of `dir` whose extension is `extension`, in name order (none
/// if it cannot be read).
pub fn files(dir: &Path, extension: &str) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == extension) && p.is_file())
        .collect();
    files.sort();
    files
}

/// What [`files`] finds, with each file's size and modification time.
pub fn fingerprint(dir: &Path, extension: &str) -> Fingerprint {
    files(dir, extension)
        .into_iter()
        .map(|path| {
            let meta = std::fs::metadata(&path).ok();
            let len = meta.as_ref().map_or(0, |m| m.len());
            let modified = meta.and_then(|m| m.modified().ok());
            (path, len, modified)
        })
        .collect()
}
