//! The bad inputs: each is refused with an error that says what and why,
//! before the target is touched.

use crate::support::{count, db_files, open_module, run, schemas, seed, sqlite_url, ITEMS};
use backup::{BackupError, Manifest, RestoreOptions, Store};
use std::io::Write;
use std::path::{Path, PathBuf};

/// A data dir with one module, and a directory backup of it.
async fn backed_up() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("tempdir");
    let live = dir.path().join("live");
    std::fs::create_dir(&live).expect("mkdir");
    let pool = open_module(&sqlite_url(&live, &ITEMS), &ITEMS).await;
    seed(&pool, 20).await;
    pool.close().await;
    let to = dir.path().join("backup");
    backup::backup(&Store::Sqlite { data_dir: live }, &schemas(), &to, "test")
        .await
        .expect("backup");
    (dir, to)
}

async fn restore_into(from: &Path, target: &Path) -> Result<(), BackupError> {
    let store = Store::Sqlite {
        data_dir: target.to_path_buf(),
    };
    backup::restore(from, &store, &schemas(), &RestoreOptions::default())
        .await
        .map(|_| ())
}

#[tokio::test]
async fn a_truncated_file_is_refused_and_nothing_is_restored() {
    let (dir, from) = backed_up().await;
    let file = from.join("items.db");
    let len = std::fs::metadata(&file).expect("meta").len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&file)
        .and_then(|f| f.set_len(len / 2))
        .expect("truncate");
    let target = dir.path().join("target");

    let error = restore_into(&from, &target).await.expect_err("truncated");

    let message = error.to_string();
    assert!(matches!(error, BackupError::Damaged { .. }), "{message}");
    assert!(
        message.contains("items.db") && message.contains("truncated"),
        "{message}"
    );
    assert!(db_files(&target).is_empty(), "target untouched");
}

#[tokio::test]
async fn a_tampered_byte_is_refused_and_nothing_is_restored() {
    let (dir, from) = backed_up().await;
    let file = from.join("items.db");
    let mut bytes = std::fs::read(&file).expect("read");
    let last = bytes.len() - 100;
    bytes[last] ^= 0xff;
    std::fs::write(&file, bytes).expect("tamper");
    let target = dir.path().join("target");

    let error = restore_into(&from, &target).await.expect_err("tampered");

    assert!(error.to_string().contains("sha256"), "{error}");
    assert!(db_files(&target).is_empty());
}

#[tokio::test]
async fn a_backup_newer_than_the_binary_is_refused_naming_module_and_versions() {
    let (dir, from) = backed_up().await;
    let path = from.join("manifest.json");
    let mut manifest: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).expect("read")).expect("json");
    manifest["modules"][0]["schema_version"] = serde_json::json!(7);
    std::fs::write(&path, manifest.to_string()).expect("write");
    let target = dir.path().join("target");

    let error = restore_into(&from, &target).await.expect_err("too new");

    let message = error.to_string();
    assert!(
        message.contains("module items")
            && message.contains("schema version 7")
            && message.contains("knows up to 2"),
        "{message}"
    );
    assert!(db_files(&target).is_empty());
}

#[tokio::test]
async fn a_non_empty_target_is_refused_unless_forced() {
    let (dir, from) = backed_up().await;
    let target = dir.path().join("target");
    std::fs::create_dir(&target).expect("mkdir");
    let pool = open_module(&sqlite_url(&target, &ITEMS), &ITEMS).await;
    seed(&pool, 2).await;
    pool.close().await;

    let error = restore_into(&from, &target).await.expect_err("not empty");

    assert!(matches!(error, BackupError::NotEmpty { .. }), "{error}");
    assert!(error.to_string().contains("--force"), "{error}");
    let pool = open_module(&sqlite_url(&target, &ITEMS), &ITEMS).await;
    assert_eq!(count(&pool, "items").await, 2, "left as it was");
    pool.close().await;

    let store = Store::Sqlite {
        data_dir: target.clone(),
    };
    backup::restore(&from, &store, &schemas(), &RestoreOptions { force: true })
        .await
        .expect("forced");
    let pool = open_module(&sqlite_url(&target, &ITEMS), &ITEMS).await;
    assert_eq!(count(&pool, "items").await, 20);
}

#[tokio::test]
async fn a_from_that_is_missing_or_not_a_backup_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let target = dir.path().join("target");

    let missing = restore_into(&dir.path().join("nope"), &target).await;
    assert!(
        matches!(&missing, Err(BackupError::Missing(_))),
        "{missing:?}"
    );
    assert!(missing
        .expect_err("missing")
        .to_string()
        .contains("does not exist"));

    let plain = dir.path().join("plain");
    std::fs::create_dir(&plain).expect("mkdir");
    std::fs::write(plain.join("items.db"), b"not a database").expect("write");
    let error = restore_into(&plain, &target)
        .await
        .expect_err("no manifest");
    assert!(error.to_string().contains("is not a backup"), "{error}");
    assert!(error.to_string().contains("manifest.json"), "{error}");

    let file = dir.path().join("notes.txt");
    std::fs::write(&file, b"hello").expect("write");
    let error = restore_into(&file, &target).await.expect_err("not a tar");
    assert!(error.to_string().contains("is not a backup"), "{error}");
    assert!(db_files(&target).is_empty());
}

#[tokio::test]
async fn a_backup_never_overwrites_and_fails_cleanly_on_an_unwritable_target() {
    let (dir, from) = backed_up().await;
    let live = dir.path().join("live");
    let store = Store::Sqlite {
        data_dir: live.clone(),
    };

    let exists = backup::backup(&store, &schemas(), &from, "test").await;
    assert!(matches!(exists, Err(BackupError::Exists(_))), "{exists:?}");
    Manifest::read(&from).expect("the old backup is intact");

    // Read-only: a path under a regular file fails with ENOTDIR even for
    // root, where a chmod 0555 directory would not stop the write.
    let file = dir.path().join("a-file");
    std::fs::write(&file, b"x").expect("write");
    let error = backup::backup(&store, &schemas(), &file.join("backup"), "test")
        .await
        .expect_err("unwritable");
    assert!(matches!(error, BackupError::Io { .. }), "{error}");
    assert!(error.to_string().contains("a-file"), "{error}");

    // The live store is unaffected: it opens, reads and takes writes.
    let pool = open_module(&sqlite_url(&live, &ITEMS), &ITEMS).await;
    run(
        &pool,
        "INSERT INTO items (name) VALUES ($1)",
        &[Some("live".into())],
    )
    .await;
    assert_eq!(count(&pool, "items").await, 21);
    let left: Vec<_> = std::fs::read_dir(dir.path())
        .expect("ls")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains("partial"))
        .collect();
    assert!(left.is_empty(), "{left:?}");
}

/// A disk that fills up after `room` bytes.
struct FullDisk {
    room: usize,
}

impl Write for FullDisk {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if self.room == 0 {
            return Err(std::io::Error::from_raw_os_error(28)); // ENOSPC
        }
        let n = buf.len().min(self.room);
        self.room -= n;
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn a_full_disk_fails_the_tar_write() {
    // Making a small filesystem needs root (mount) and a tmpfs is not
    // always there, so the full disk is a writer that fails with ENOSPC,
    // the error the kernel gives.
    let (_dir, from) = backed_up().await;
    let manifest = backup::verify(&from).expect("verify");

    let error = backup::write_tar(&from, &manifest, FullDisk { room: 4096 })
        .err()
        .expect("disk full");

    assert_eq!(error.raw_os_error(), Some(28), "{error}");
}

#[tokio::test]
async fn an_engine_mismatch_is_refused_before_connecting() {
    let (_dir, from) = backed_up().await;
    let store = Store::Postgres {
        url: "postgres://nobody@127.0.0.1:1/none".to_string(),
    };

    let error = backup::restore(&from, &store, &schemas(), &RestoreOptions::default())
        .await
        .expect_err("mismatch");

    assert!(
        error
            .to_string()
            .contains("a sqlite backup; the target is postgres"),
        "{error}"
    );
}
