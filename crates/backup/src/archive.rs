//! Where a backup is written and how it is checked.
//!
//! A backup is built in a staging directory next to its destination
//! (`.<name>.partial-<pid>`), verified by re-reading every file against the
//! manifest, and only then renamed to its name (or packed into
//! `<name>.partial-<pid>` and renamed to the tar file). A backup that fails
//! half-way (a full disk, a database error) removes its staging directory:
//! nothing that looks like a complete backup is left behind.

use crate::checksum;
use crate::manifest::{self, Manifest};
use crate::BackupError;
use std::collections::HashMap;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

/// The staging directory of a backup being written; removed on drop
/// unless [`commit`](Staging::commit)ted.
pub(crate) struct Staging {
    dir: PathBuf,
    committed: bool,
}

impl Staging {
    /// A new empty staging directory for a backup that will be called
    /// `destination`, which must not exist yet.
    pub(crate) fn next_to(destination: &Path) -> Result<Self, BackupError> {
        if destination.exists() {
            return Err(BackupError::Exists(destination.to_path_buf()));
        }
        let dir = partial_name(destination, "");
        std::fs::create_dir(&dir).map_err(BackupError::io("creating", &dir))?;
        Ok(Self {
            dir,
            committed: false,
        })
    }

    pub(crate) fn path(&self) -> &Path {
        &self.dir
    }

    /// Moves the verified backup to `destination`: the directory itself,
    /// or a tar file when `tar` (then the staging directory goes away).
    pub(crate) fn commit(
        mut self,
        destination: &Path,
        manifest: &Manifest,
        tar: bool,
    ) -> Result<(), BackupError> {
        if tar {
            let partial = partial_name(destination, ".tar");
            let packed = (|| {
                let file = std::fs::File::create(&partial)?;
                let file = write_tar(&self.dir, manifest, std::io::BufWriter::new(file))?;
                let file = file.into_inner().map_err(|e| e.into_error())?;
                file.sync_all()
            })();
            if let Err(e) = packed {
                let _ = std::fs::remove_file(&partial);
                return Err(BackupError::io("writing", &partial)(e));
            }
            if let Err(e) = verify(&partial) {
                let _ = std::fs::remove_file(&partial);
                return Err(e);
            }
            std::fs::rename(&partial, destination)
                .map_err(BackupError::io("renaming to", destination))?;
        } else {
            std::fs::rename(&self.dir, destination)
                .map_err(BackupError::io("renaming to", destination))?;
            self.committed = true;
        }
        Ok(())
    }
}

impl Drop for Staging {
    fn drop(&mut self) {
        if !self.committed {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

fn partial_name(destination: &Path, suffix: &str) -> PathBuf {
    let name = destination
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "backup".to_string());
    destination.with_file_name(format!(".{name}.partial-{}{suffix}", std::process::id()))
}

/// Packs the backup in `dir` into `out` as a tar stream: the manifest
/// first, then the files it lists. Public so a failing writer (a full disk)
/// can be tested without one.
pub fn write_tar<W: Write>(dir: &Path, manifest: &Manifest, out: W) -> std::io::Result<W> {
    let mut builder = tar::Builder::new(out);
    builder.mode(tar::HeaderMode::Deterministic);
    builder.append_path_with_name(dir.join(manifest::FILE), manifest::FILE)?;
    for file in &manifest.files {
        builder.append_path_with_name(dir.join(&file.path), &file.path)?;
    }
    builder.into_inner()
}

/// Checks the backup at `path` (a directory or a tar file): its manifest
/// is readable and every file it lists is there with its size and sha256.
/// Returns the manifest.
pub fn verify(path: &Path) -> Result<Manifest, BackupError> {
    let meta = std::fs::metadata(path).map_err(|_| BackupError::Missing(path.to_path_buf()))?;
    if meta.is_dir() {
        verify_dir(path)
    } else {
        verify_tar(path)
    }
}

fn verify_dir(dir: &Path) -> Result<Manifest, BackupError> {
    let manifest = Manifest::read(dir)?;
    for file in &manifest.files {
        let path = dir.join(&file.path);
        if !path.is_file() {
            return Err(damaged(&file.path, "missing"));
        }
        let (bytes, sha256) = checksum::file(&path)?;
        compare(&file.path, file.bytes, &file.sha256, bytes, &sha256)?;
    }
    Ok(manifest)
}

fn verify_tar(path: &Path) -> Result<Manifest, BackupError> {
    let not_a_backup = |why: String| BackupError::NotABackup {
        path: path.to_path_buf(),
        why,
    };
    let file = std::fs::File::open(path).map_err(BackupError::io("reading", path))?;
    let mut archive = tar::Archive::new(std::io::BufReader::new(file));
    let mut entries = archive
        .entries()
        .map_err(|e| not_a_backup(format!("not a tar file: {e}")))?;
    let mut first = match entries.next() {
        Some(Ok(entry)) => entry,
        Some(Err(e)) => return Err(not_a_backup(format!("not a tar file: {e}"))),
        None => return Err(not_a_backup("an empty tar file".to_string())),
    };
    let first_name = first.path().map(|p| p.to_string_lossy().into_owned());
    if first_name.ok().as_deref() != Some(manifest::FILE) {
        return Err(not_a_backup(format!(
            "its first entry is not {}",
            manifest::FILE
        )));
    }
    let staged = tempfile::tempdir().map_err(BackupError::io("creating", std::env::temp_dir()))?;
    let mut text = String::new();
    first
        .read_to_string(&mut text)
        .map_err(|e| not_a_backup(format!("{}: {e}", manifest::FILE)))?;
    std::fs::write(staged.path().join(manifest::FILE), text)
        .map_err(BackupError::io("writing", staged.path()))?;
    let manifest = Manifest::read(staged.path()).map_err(|e| match e {
        BackupError::NotABackup { why, .. } => not_a_backup(why),
        other => other,
    })?;
    let mut expected: HashMap<&str, &manifest::FileEntry> = manifest
        .files
        .iter()
        .map(|f| (f.path.as_str(), f))
        .collect();
    for entry in entries {
        let mut entry = entry.map_err(|e| damaged(&path.display().to_string(), &e.to_string()))?;
        let name = entry
            .path()
            .map(|p| p.to_string_lossy().into_owned())
            .map_err(|e| damaged(&path.display().to_string(), &e.to_string()))?;
        let Some(file) = expected.remove(name.as_str()) else {
            return Err(damaged(&name, "not listed in the manifest"));
        };
        let (bytes, sha256) =
            checksum::reader(&mut entry).map_err(|e| damaged(&name, &e.to_string()))?;
        compare(&name, file.bytes, &file.sha256, bytes, &sha256)?;
    }
    if let Some(missing) = expected.keys().next() {
        return Err(damaged(missing, "missing"));
    }
    Ok(manifest)
}

/// Unpacks the tar backup at `path` into `into` (verified first).
pub(crate) fn unpack(path: &Path, into: &Path) -> Result<Manifest, BackupError> {
    verify_tar(path)?;
    let file = std::fs::File::open(path).map_err(BackupError::io("reading", path))?;
    let mut archive = tar::Archive::new(std::io::BufReader::new(file));
    archive
        .unpack(into)
        .map_err(BackupError::io("unpacking into", into))?;
    verify_dir(into)
}

fn compare(
    name: &str,
    expected_bytes: u64,
    expected_sha: &str,
    bytes: u64,
    sha256: &str,
) -> Result<(), BackupError> {
    if bytes != expected_bytes {
        return Err(damaged(
            name,
            &format!("{bytes} bytes, the manifest says {expected_bytes} (truncated?)"),
        ));
    }
    if sha256 != expected_sha {
        return Err(damaged(
            name,
            &format!("sha256 {sha256}, the manifest says {expected_sha}"),
        ));
    }
    Ok(())
}

fn damaged(file: &str, why: &str) -> BackupError {
    BackupError::Damaged {
        file: file.to_string(),
        why: why.to_string(),
    }
}
