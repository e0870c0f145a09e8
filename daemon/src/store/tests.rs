//! The store's writer, snapshots and failure handling, on files and on an
//! in-memory backend that can be told to fail.

use std::sync::atomic::{AtomicBool, Ordering};

use super::test_support::MemBackend;
use super::*;

fn put(
    key: &'static [u8],
    value: &'static [u8],
) -> impl FnMut(&mut Txn<'_>) -> Result<(), StoreError> {
    move |txn| txn.insert(TreeId::Workflow, key, value)
}

fn value(store: &Store, key: &[u8]) -> Option<Vec<u8>> {
    store
        .read()
        .unwrap()
        .get(TreeId::Workflow, key)
        .unwrap()
        .map(|v| v.to_vec())
}

#[test]
fn a_second_open_says_who_holds_the_store() {
    let dir = tempfile::tempdir().unwrap();
    let _first = Store::open(dir.path()).unwrap();
    let err = Store::open(dir.path()).unwrap_err();
    assert!(matches!(err, StoreError::Locked { .. }), "{err:?}");
    let message = err.to_string();
    assert!(
        message.starts_with("another zend holds the store at "),
        "{message}"
    );
    assert!(message.contains(&dir.path().join("store.redb").display().to_string()));
}

#[tokio::test]
async fn schema_version_is_written_and_checked() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = Store::open(dir.path()).unwrap();
        let tx = store.inner.shared.db.begin_read().unwrap();
        let meta = tx.open_table(META).unwrap();
        assert_eq!(meta.get(SCHEMA_KEY).unwrap().unwrap().value(), b"2");
        drop((meta, tx));
        // What a newer zend would leave.
        let mut tx = store.inner.shared.db.begin_write().unwrap();
        tx.set_durability(Durability::Immediate).unwrap();
        tx.open_table(META)
            .unwrap()
            .insert(SCHEMA_KEY, &b"7"[..])
            .unwrap();
        tx.commit().unwrap();
        store.close().await.unwrap();
    }
    let err = retry_open(dir.path()).unwrap_err();
    assert!(
        matches!(err, StoreError::NewerSchema { found: 7, .. }),
        "{err}"
    );
    assert!(err.to_string().contains("upgrade zend"));
}

fn retry_open(dir: &Path) -> Result<Store, StoreError> {
    test_support::retry_while_locked(
        || Store::open(dir),
        |e| matches!(e, StoreError::Locked { .. }),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_writes_all_land_and_survive_a_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let mut tasks = Vec::new();
    for i in 0..64_u32 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            store
                .write(move |txn| txn.insert(TreeId::Workflow, &i.to_be_bytes(), &[1]))
                .await
                .unwrap();
            // Answered means readable (and durable).
            assert!(value(&store, &i.to_be_bytes()).is_some());
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    store.close().await.unwrap();
    let late = store.write(put(b"late", b"x")).await;
    assert!(matches!(late, Err(StoreError::Closed)), "{late:?}");
    drop(store);
    let store = retry_open(dir.path()).unwrap();
    assert_eq!(store.read().unwrap().iter(TreeId::Workflow).count(), 64);
}

#[tokio::test]
async fn a_failed_operation_leaves_nothing_and_the_others_land() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    // Queued together, so they share a transaction: the failing one writes
    // before it fails, and its write must not land with the others.
    let first = store.write(put(b"a", b"1"));
    let failing = store.write(|txn: &mut Txn<'_>| {
        txn.insert(TreeId::Workflow, b"b", b"2")?;
        Err::<(), _>(StoreError::Closed)
    });
    let hooked = std::sync::Arc::new(AtomicBool::new(false));
    let third = store.write({
        let hooked = hooked.clone();
        move |txn: &mut Txn<'_>| {
            txn.insert(TreeId::Workflow, b"c", b"3")?;
            let hooked = hooked.clone();
            txn.on_commit(move || hooked.store(true, Ordering::SeqCst));
            Ok::<_, StoreError>(())
        }
    });
    first.await.unwrap();
    assert!(matches!(failing.await, Err(StoreError::Closed)));
    third.await.unwrap();
    assert!(hooked.load(Ordering::SeqCst));
    assert_eq!(value(&store, b"a").as_deref(), Some(&b"1"[..]));
    assert_eq!(value(&store, b"b"), None);
    assert_eq!(value(&store, b"c").as_deref(), Some(&b"3"[..]));
}

#[tokio::test]
async fn a_failed_commit_applies_nothing_and_refuses_later_writes() {
    let backend = MemBackend::default();
    let store = Store::open_backend(backend.clone(), Path::new("memory")).unwrap();
    store.write(put(b"kept", b"1")).await.unwrap();
    backend.0.fail.store(true, Ordering::SeqCst);
    let hooked = std::sync::Arc::new(AtomicBool::new(false));
    let failed = store
        .write({
            let hooked = hooked.clone();
            move |txn: &mut Txn<'_>| {
                txn.insert(TreeId::Workflow, b"lost", b"2")?;
                let hooked = hooked.clone();
                txn.on_commit(move || hooked.store(true, Ordering::SeqCst));
                Ok::<_, StoreError>(())
            }
        })
        .await
        .unwrap_err();
    let message = failed.to_string();
    assert!(matches!(failed, StoreError::Failed { .. }), "{failed:?}");
    assert!(message.contains("takes no more writes"), "{message}");
    assert!(
        !hooked.load(Ordering::SeqCst),
        "a hook ran for a failed commit"
    );
    // Nothing of it is visible; the earlier write is.
    assert_eq!(value(&store, b"lost"), None);
    assert_eq!(value(&store, b"kept").as_deref(), Some(&b"1"[..]));
    // The disk works again, but the store does not pretend it recovered.
    backend.0.fail.store(false, Ordering::SeqCst);
    let again = store.write(put(b"later", b"3")).await.unwrap_err();
    assert!(matches!(again, StoreError::Failed { .. }), "{again:?}");
    assert!(store.flush().await.is_err());
}

#[test]
fn prefixes_end_before_the_next_prefix() {
    assert_eq!(prefix_end(b"ab").as_deref(), Some(&b"ac"[..]));
    assert_eq!(prefix_end(&[1, 0xff]).as_deref(), Some(&[2][..]));
    assert_eq!(prefix_end(&[0xff, 0xff]), None);
}

#[tokio::test]
async fn snapshots_read_ranges_both_ways() {
    let store = Store::open_backend(MemBackend::default(), Path::new("memory")).unwrap();
    for key in [&b"a1"[..], b"a3", b"b1", &[0xff], &[0xff, 0]] {
        let key = key.to_vec();
        store
            .write(move |txn| txn.insert(TreeId::Turns, &key, b"x"))
            .await
            .unwrap();
    }
    let snapshot = store.read().unwrap();
    let keys = |iter: Iter| -> Vec<Vec<u8>> { iter.map(|e| e.unwrap().0.to_vec()).collect() };
    assert_eq!(
        keys(snapshot.scan_prefix(TreeId::Turns, b"a")),
        [b"a1", b"a3"]
    );
    assert_eq!(keys(snapshot.scan_prefix(TreeId::Turns, [0xff])).len(), 2);
    assert_eq!(keys(snapshot.range_from(TreeId::Turns, b"a2"))[0], b"a3");
    assert_eq!(keys(snapshot.iter_rev(TreeId::Turns))[0], [0xff, 0]);
    // A snapshot does not see later writes.
    store
        .write(|txn: &mut Txn<'_>| txn.insert(TreeId::Turns, b"c", b"x"))
        .await
        .unwrap();
    assert_eq!(snapshot.iter(TreeId::Turns).count(), 5);
    assert_eq!(store.read().unwrap().iter(TreeId::Turns).count(), 6);
}

#[test]
fn keys_display_as_text_or_hex() {
    assert_eq!(KeyDisplay(b"all/total/").to_string(), "all/total/");
    assert_eq!(KeyDisplay(&[0, 255]).to_string(), "00ff");
}
