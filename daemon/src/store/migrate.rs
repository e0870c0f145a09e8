//! Moving a store of the sled era (`data_dir/store/`, a sled 0.34
//! directory) into the redb file, once, at open.
//!
//! Every tree and the schema version are copied as they are (the key layout
//! did not change) in one redb transaction into `store.redb.partial`, which is
//! renamed to `store.redb` only once it is complete and durable: a zend
//! killed midway starts the copy again. The sled directory is then renamed
//! to `store.sled-migrated` and left for the user to delete. The write-ahead
//! log is not touched: the store replays it on top of the copy, as after any
//! unclean stop.

use std::path::{Path, PathBuf};

use super::engine::{META, table};
use super::{SCHEMA_KEY, StoreError, TreeId};

/// Copies `data_dir/store/` into `path` when the one exists and the other
/// does not; does nothing otherwise.
pub(super) fn from_sled_if_needed(data_dir: &Path, path: &Path) -> Result<(), StoreError> {
    let old = data_dir.join("store");
    if path.exists() || !old.join("conf").is_file() {
        return Ok(());
    }
    let started = std::time::Instant::now();
    let failed = |reason: String| StoreError::Migrate {
        path: old.clone(),
        reason,
    };
    let sled_db = sled::Config::new()
        .path(&old)
        .flush_every_ms(None)
        .open()
        .map_err(|e| match &e {
            // sled's file lock: another process has the old store open.
            sled::Error::Io(io)
                if io.kind() == std::io::ErrorKind::WouldBlock
                    || io.to_string().contains("could not acquire lock") =>
            {
                StoreError::Locked { path: old.clone() }
            }
            _ => failed(format!("cannot open it: {e}")),
        })?;
    let partial = data_dir.join("store.redb.partial");
    match std::fs::remove_file(&partial) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(failed(format!("cannot remove {}: {e}", partial.display()))),
    }
    let mut entries = 0_u64;
    {
        let redb_db = redb::Database::builder()
            .create(&partial)
            .map_err(|e| failed(format!("cannot create {}: {e}", partial.display())))?;
        let mut tx = redb_db.begin_write()?;
        tx.set_durability(redb::Durability::Immediate)?;
        tx.set_quick_repair(true);
        if let Some(version) = sled_db
            .get(SCHEMA_KEY)
            .map_err(|e| failed(format!("cannot read it: {e}")))?
        {
            tx.open_table(META)?.insert(SCHEMA_KEY, &*version)?;
        }
        for tree in TreeId::ALL {
            let source = sled_db
                .open_tree(tree.name())
                .map_err(|e| failed(format!("cannot read its tree {}: {e}", tree.name())))?;
            let mut target = tx.open_table(table(tree))?;
            for entry in source.iter() {
                let (key, value) = entry
                    .map_err(|e| failed(format!("cannot read its tree {}: {e}", tree.name())))?;
                target.insert(&*key, &*value)?;
                entries += 1;
            }
        }
        tx.commit()?;
    }
    drop(sled_db);
    let renamed = |from: &Path, to: &Path| {
        std::fs::rename(from, to).map_err(|e| {
            failed(format!(
                "cannot rename {} to {}: {e}",
                from.display(),
                to.display()
            ))
        })
    };
    renamed(&partial, path)?;
    sync_dir(data_dir);
    let kept = free_name(data_dir);
    renamed(&old, &kept)?;
    sync_dir(data_dir);
    tracing::info!(
        entries,
        from = %old.display(),
        to = %path.display(),
        kept = %kept.display(),
        millis = started.elapsed().as_millis() as u64,
        "moved the store into its new format; the old directory is kept and may be deleted"
    );
    Ok(())
}

/// `store.sled-migrated`, or with a number when that exists.
fn free_name(data_dir: &Path) -> PathBuf {
    let mut candidate = data_dir.join("store.sled-migrated");
    let mut n = 1;
    while candidate.exists() {
        n += 1;
        candidate = data_dir.join(format!("store.sled-migrated.{n}"));
    }
    candidate
}

/// Makes the renames in `dir` durable (best effort: a lost rename is only
/// the copy running again).
fn sync_dir(dir: &Path) {
    if let Ok(dir) = std::fs::File::open(dir) {
        let _ = dir.sync_all();
    }
}

#[cfg(test)]
mod tests {
    use crate::ledger::LimitsConfig;
    use crate::memory::{NewThread, NewTurn};
    use crate::store::test_support::reopen;
    use crate::store::{Store, TreeId};

    /// A store as a zend of the sled era left it: the same trees, keys and
    /// values, in a sled directory (written here from a redb store's entries),
    /// and an unclean stop (records still in the log).
    #[tokio::test]
    async fn a_sled_store_is_moved_with_everything_in_it() {
        let source = tempfile::tempdir().unwrap();
        let (store, _clock) = reopen(&source, LimitsConfig::default());
        let threads = store.threads();
        let id = threads
            .create(NewThread {
                tool: "chat".into(),
                session_id: "s".into(),
                client: "claude-code".into(),
                cwd: None,
                parent: None,
                first_prompt: "moved".into(),
            })
            .await
            .unwrap();
        threads
            .append(&id, NewTurn::user("chat", "one"))
            .await
            .unwrap();
        store.close().await.unwrap();
        let mut dump: Vec<(TreeId, Vec<u8>, Vec<u8>)> = Vec::new();
        for tree in TreeId::ALL {
            for entry in store.db().open_tree(tree.name()).unwrap().iter() {
                let (key, value) = entry.unwrap();
                dump.push((tree, key.to_vec(), value.to_vec()));
            }
        }
        assert!(dump.len() >= 3, "{dump:?}");
        // A write the sled-era zend had only in its log.
        threads
            .append(&id, NewTurn::user("chat", "two"))
            .await
            .unwrap();
        let crashed = crate::store::test_support::crash_copy(&store, source.path());
        drop(store);

        let dir = tempfile::tempdir().unwrap();
        {
            let sled_db = sled::Config::new()
                .path(dir.path().join("store"))
                .open()
                .unwrap();
            sled_db.insert(super::SCHEMA_KEY, &b"2"[..]).unwrap();
            for (tree, key, value) in &dump {
                sled_db
                    .open_tree(tree.name())
                    .unwrap()
                    .insert(key.as_slice(), value.as_slice())
                    .unwrap();
            }
            sled_db.flush().unwrap();
        }
        crate::store::test_support::copy_dir(&crashed.path().join("wal"), &dir.path().join("wal"));

        let (store, _clock) = reopen(&dir, LimitsConfig::default());
        assert!(dir.path().join("store.redb").is_file());
        assert!(!dir.path().join("store").exists());
        assert!(
            dir.path()
                .join("store.sled-migrated")
                .join("conf")
                .is_file()
        );
        let thread = store.threads().get(&id).unwrap();
        assert_eq!(thread.summary.title, "moved");
        let texts: Vec<&str> = thread.turns.iter().map(|t| t.text.as_str()).collect();
        assert_eq!(texts, ["one", "two"]);
        // Opening again does not copy again.
        drop(store);
        let (store, _clock) = reopen(&dir, LimitsConfig::default());
        assert_eq!(store.threads().get(&id).unwrap().turns.len(), 2);
        assert!(!dir.path().join("store.sled-migrated.2").exists());
    }

    #[test]
    fn a_store_without_sled_is_left_alone() {
        let dir = tempfile::tempdir().unwrap();
        drop(Store::open(dir.path()).unwrap());
        assert!(!dir.path().join("store.sled-migrated").exists());
    }
}
