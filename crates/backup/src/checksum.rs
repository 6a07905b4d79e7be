//! sha256 of files and of row streams, as lowercase hex.

use crate::BackupError;
use sha2::{Digest, Sha256};
use std::io::Read;
use std::path::Path;

/// Size and sha256 of the file at `path`, read in 1 MiB blocks.
pub(crate) fn file(path: &Path) -> Result<(u64, String), BackupError> {
    let mut file = std::fs::File::open(path).map_err(BackupError::io("reading", path))?;
    reader(&mut file).map_err(BackupError::io("reading", path))
}

/// Size and sha256 of everything `source` yields.
pub(crate) fn reader(source: &mut impl Read) -> std::io::Result<(u64, String)> {
    let mut hasher = Sha256::new();
    let mut buffer = vec![0u8; 1 << 20];
    let mut total = 0u64;
    loop {
        let n = source.read(&mut buffer)?;
        if n == 0 {
            break;
        }
        hasher.update(&buffer[..n]);
        total += n as u64;
    }
    Ok((total, hex::encode(hasher.finalize())))
}

/// A table's content checksum: rows fed in order, one line each.
#[derive(Default)]
pub(crate) struct Rows {
    hasher: Sha256,
    pub(crate) rows: u64,
}

impl Rows {
    /// One row, already in the engine's text form, without its newline.
    pub(crate) fn row(&mut self, text: &[u8]) {
        self.hasher.update(text);
        self.hasher.update(b"\n");
        self.rows += 1;
    }

    /// A block of `COPY` text output: whole or partial lines, counted by
    /// their newlines (`COPY` escapes newlines inside values).
    pub(crate) fn copy_block(&mut self, block: &[u8]) {
        self.hasher.update(block);
        self.rows += block.iter().filter(|b| **b == b'\n').count() as u64;
    }

    pub(crate) fn finish(self) -> (u64, String) {
        (self.rows, hex::encode(self.hasher.finalize()))
    }
}
