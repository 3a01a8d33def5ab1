use super::*;
use crate::keys::encode_key_value;
use crate::row::Value;

fn key(table: u64, id: i64) -> Vec<u8> {
    let mut k = table_prefix(table).to_vec();
    encode_key_value(&Value::Int64(id), &mut k);
    k
}

fn row(seq: i64, v: &str) -> StoredRow {
    StoredRow {
        seq,
        deleted: false,
        cells: vec![(1, Value::Text(v.to_string()))],
    }
}

#[test]
fn rows_survive_reopen_and_seq_continues() {
    let dir = tempfile::tempdir().unwrap();
    let last;
    {
        let store = Store::open(dir.path(), &StoreOptions::default()).unwrap();
        let mut batch = store.batch();
        let seq = store.seq().next().0;
        batch.put_row(&key(1, 5), &row(seq, "five"));
        batch.put_meta(b"ns/app", b"{}");
        store.commit(batch).unwrap();
        last = seq;
    }
    let store = Store::open(dir.path(), &StoreOptions::default()).unwrap();
    assert_eq!(store.get_row(&key(1, 5)).unwrap(), Some(row(last, "five")));
    assert_eq!(
        store.get_meta(b"ns/app").unwrap().as_deref(),
        Some(&b"{}"[..])
    );
    assert!(store.seq().next().0 > last);
}

#[test]
fn scans_are_chunked_in_key_order_and_per_table() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), &StoreOptions::default()).unwrap();
    let mut batch = store.batch();
    for id in [3, -1, 2, 10, 0] {
        batch.put_row(&key(7, id), &row(id + 100, "x"));
    }
    batch.put_row(&key(8, 1), &row(1, "other table"));
    batch.put_row(&key(6, 1), &row(1, "other table"));
    store.commit(batch).unwrap();

    let mut seen = Vec::new();
    let mut after: Option<Box<[u8]>> = None;
    loop {
        let scan = store
            .scan_rows(&Scope::table(7), after.as_deref(), 2)
            .unwrap();
        seen.extend(scan.rows.iter().map(|(_, r)| r.seq - 100));
        match scan.resume_after {
            Some(k) => after = Some(k),
            None => break,
        }
    }
    assert_eq!(seen, vec![-1, 0, 2, 3, 10]);
}

#[test]
fn dropping_a_table_removes_only_its_rows() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), &StoreOptions::default()).unwrap();
    let mut batch = store.batch();
    batch.put_row(&key(7, 1), &row(1, "a"));
    batch.put_row(&key(8, 1), &row(2, "b"));
    store.commit(batch).unwrap();
    let mut batch = store.batch();
    batch.delete_table_rows(7);
    store.commit(batch).unwrap();
    assert!(
        store
            .scan_rows(&Scope::table(7), None, 10)
            .unwrap()
            .rows
            .is_empty()
    );
    assert_eq!(
        store
            .scan_rows(&Scope::table(8), None, 10)
            .unwrap()
            .rows
            .len(),
        1
    );
}

#[test]
fn meta_prefix_scan() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), &StoreOptions::default()).unwrap();
    let mut batch = store.batch();
    batch.put_meta(b"ns/a", b"1");
    batch.put_meta(b"ns/b", b"2");
    batch.put_meta(b"tb/a", b"3");
    store.commit(batch).unwrap();
    let found = store.scan_meta(b"ns/").unwrap();
    assert_eq!(found.len(), 2);
}

#[test]
fn prefix_scans_stop_at_the_end_of_the_prefix() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), &StoreOptions::default()).unwrap();
    let composite = |table: u64, group: &str, id: i64| {
        let mut k = table_prefix(table).to_vec();
        encode_key_value(&Value::Text(group.to_string()), &mut k);
        encode_key_value(&Value::Int64(id), &mut k);
        k
    };
    let mut batch = store.batch();
    for (table, group, id) in [
        (1, "a", 1),
        (1, "a", 2),
        (1, "ab", 1),
        (1, "b", 1),
        (2, "a", 1),
    ] {
        let seq = store.seq().next().0;
        batch.put_row(&composite(table, group, id), &row(seq, group));
    }
    store.commit(batch).unwrap();

    let mut prefix = table_prefix(1).to_vec();
    encode_key_value(&Value::Text("a".to_string()), &mut prefix);
    let scan = store.scan_row_prefix(&prefix, None, 10).unwrap();
    let keys: Vec<_> = scan.rows.iter().map(|(k, _)| k.to_vec()).collect();
    assert_eq!(keys, vec![composite(1, "a", 1), composite(1, "a", 2)]);

    let all_ones = store.scan_row_prefix(&[0xff; 8], None, 10).unwrap();
    assert!(all_ones.rows.is_empty());
    assert_eq!(
        store
            .scan_rows(&Scope::table(1), None, 10)
            .unwrap()
            .rows
            .len(),
        4
    );
}

#[test]
fn owner_scopes_hold_their_own_rows() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), &StoreOptions::default()).unwrap();
    let mut batch = store.batch();
    for (owner, id) in [
        ("bob", 1),
        ("alice", 2),
        ("alice", 1),
        ("al", 9),
        ("bob", 3),
    ] {
        let seq = store.seq().next().0;
        let key = Scope::owned(5, owner).key(&Value::Int64(id)).unwrap();
        batch.put_row(&key, &row(seq, owner));
    }
    // A neighbouring table's rows stay out of every scope of table 5.
    let seq = store.seq().next().0;
    batch.put_row(&key(6, 1), &row(seq, "other"));
    store.commit(batch).unwrap();

    assert_eq!(store.owners(5).unwrap(), vec!["al", "alice", "bob"]);
    assert!(store.owners(4).unwrap().is_empty());
    let alice = Scope::owned(5, "alice");
    let scan = store.scan_rows(&alice, None, 10).unwrap();
    assert_eq!(scan.rows.len(), 2);
    assert!(
        scan.rows
            .iter()
            .all(|(_, r)| r.cells[0].1 == Value::Text("alice".into()))
    );
    assert_eq!(
        store
            .count_rows(&Scope::owned(5, "bob"), usize::MAX)
            .unwrap(),
        2
    );
    assert_eq!(
        store
            .count_rows(&Scope::owned(5, "carol"), usize::MAX)
            .unwrap(),
        0
    );
    assert_eq!(store.count_rows(&Scope::table(5), usize::MAX).unwrap(), 5);
    let (first, last) = store.key_range(&alice).unwrap().unwrap();
    assert_eq!(&*first, alice.key(&Value::Int64(1)).unwrap().as_slice());
    assert_eq!(&*last, alice.key(&Value::Int64(2)).unwrap().as_slice());
}

#[test]
fn delete_unchanged_keeps_rows_written_since() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), &StoreOptions::default()).unwrap();
    let mut batch = store.batch();
    for id in 0..10 {
        batch.put_row(&key(7, id), &row(100 + id, "flushed"));
    }
    batch.put_row(&key(8, 0), &row(1, "other table"));
    store.commit(batch).unwrap();
    // The versions a flush read: the even ids.
    let versions: Vec<(Box<[u8]>, i64)> = (0..10)
        .step_by(2)
        .map(|id| (key(7, id).into_boxed_slice(), 100 + id))
        .collect();
    // Since then id 4 was written again, and a row beyond the range added.
    let mut batch = store.batch();
    batch.put_row(&key(7, 4), &row(500, "newer"));
    batch.put_row(&key(7, 20), &row(501, "new"));
    store.commit(batch).unwrap();

    store.delete_unchanged(&versions).unwrap();
    for id in 0..10 {
        let now = store.get_row(&key(7, id)).unwrap();
        match id {
            4 => assert_eq!(now, Some(row(500, "newer"))),
            id if id % 2 == 0 => assert_eq!(now, None, "id {id}"),
            id => assert_eq!(now, Some(row(100 + id, "flushed")), "id {id}"),
        }
    }
    assert_eq!(store.get_row(&key(7, 20)).unwrap(), Some(row(501, "new")));
    assert_eq!(
        store.get_row(&key(8, 0)).unwrap(),
        Some(row(1, "other table"))
    );
    store.delete_unchanged(&[]).unwrap();
}

#[test]
fn a_row_seq_reads_without_its_cells() {
    for seq in [0, 1, -5, 1 << 40, i64::MAX] {
        assert_eq!(StoredRow::decode_seq(&row(seq, "x").encode()).unwrap(), seq);
    }
    assert!(StoredRow::decode_seq(&[]).is_err());
}

#[test]
fn batched_lookups_match_single_lookups() {
    let dir = tempfile::tempdir().unwrap();
    {
        // Reopening moves these rows out of the memtable into a file.
        let store = Store::open(dir.path(), &StoreOptions::default()).unwrap();
        let mut batch = store.batch();
        for id in (0..40).step_by(3) {
            batch.put_row(&key(7, id), &row(id, "in a file"));
        }
        store.commit(batch).unwrap();
    }
    let store = Store::open(dir.path(), &StoreOptions::default()).unwrap();
    let mut batch = store.batch();
    for id in (0..40).step_by(5) {
        batch.put_row(&key(7, id), &row(100 + id, "in memory"));
    }
    batch.delete_row(&key(7, 9));
    batch.put_row(&key(8, 1), &row(1, "other table"));
    store.commit(batch).unwrap();

    let keys: Vec<Vec<u8>> = (0..45).map(|id| key(7, id)).collect();
    let batched = store.get_rows(keys.iter().map(Vec::as_slice)).unwrap();
    assert_eq!(batched.len(), keys.len());
    for (id, (key, found)) in keys.iter().zip(&batched).enumerate() {
        assert_eq!(*found, store.get_row(key).unwrap(), "id {id}");
    }
    assert_eq!(batched[15], Some(row(115, "in memory")));
    assert_eq!(batched[3], Some(row(3, "in a file")));
    assert_eq!(batched[1], None);
    assert!(store.get_rows([]).unwrap().is_empty());
}

#[test]
fn delete_unchanged_removes_runs_and_scattered_rows_alike() {
    // Every row flushed and unchanged: one run. Every third row rewritten
    // and a new row between others: more runs than range deletes.
    for scattered in [false, true] {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), &StoreOptions::default()).unwrap();
        let mut batch = store.batch();
        for id in (0..60).step_by(2) {
            batch.put_row(&key(7, id), &row(id, "flushed"));
        }
        batch.put_row(&key(7, 100), &row(1, "after the range"));
        store.commit(batch).unwrap();
        let versions: Vec<(Box<[u8]>, i64)> = (0..60)
            .step_by(2)
            .map(|id| (key(7, id).into_boxed_slice(), id))
            .collect();
        let kept = |id: i64| scattered && (id % 6 == 0 || id == 31);
        let mut batch = store.batch();
        for id in 0..60 {
            if kept(id) {
                batch.put_row(&key(7, id), &row(1000 + id, "since"));
            }
        }
        store.commit(batch).unwrap();

        store.delete_unchanged(&versions).unwrap();
        for id in 0..60 {
            let expected = kept(id).then(|| row(1000 + id, "since"));
            assert_eq!(store.get_row(&key(7, id)).unwrap(), expected, "id {id}");
        }
        assert_eq!(
            store.get_row(&key(7, 100)).unwrap(),
            Some(row(1, "after the range"))
        );
    }
}

#[test]
fn inserts_after_a_range_delete_still_use_the_memtable_bloom_filter() {
    use rocksdb::perf::{PerfContext, PerfMetric, PerfStatsLevel, set_perf_stats};
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), &StoreOptions::default()).unwrap();
    let mut batch = store.batch();
    for id in 0..100 {
        batch.put_row(&key(7, id), &row(id, "x"));
    }
    batch.delete_table_rows(9);
    store.commit(batch).unwrap();
    // The memtable holding the range delete is switched out soon after.
    let active_entries = || {
        store
            .db
            .property_int_value_cf(store.rows(), "rocksdb.num-entries-active-mem-table")
            .unwrap()
            .unwrap()
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while active_entries() > 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "the memtable with the range delete was not switched out"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let mut batch = store.batch();
    for id in 0..100 {
        batch.put_row(&key(7, id), &row(id, "x"));
    }
    store.commit(batch).unwrap();

    set_perf_stats(PerfStatsLevel::EnableCount);
    let mut perf = PerfContext::default();
    perf.reset();
    let absent: Vec<Vec<u8>> = (1000..1100).map(|id| key(7, id)).collect();
    let found = store.get_rows(absent.iter().map(Vec::as_slice)).unwrap();
    assert!(found.iter().all(Option::is_none));
    let skipped = perf.metric(PerfMetric::BloomMemtableMissCount);
    set_perf_stats(PerfStatsLevel::Disable);
    assert!(
        skipped >= 90,
        "the Bloom filter ruled out {skipped} of 100 keys"
    );
}

#[test]
fn frozen_hot_rows_keep_the_moment_they_were_taken() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(Store::open(dir.path(), &StoreOptions::default()).unwrap());
    let mut batch = store.batch();
    for id in 1..=3 {
        batch.put_row(&key(7, id), &row(id, "before"));
    }
    store.commit(batch).unwrap();
    let frozen = HotRows::frozen(store.clone());
    let current = HotRows::current(store.clone());

    let mut batch = store.batch();
    batch.put_row(&key(7, 1), &row(10, "after"));
    batch.delete_row(&key(7, 2));
    batch.put_row(&key(7, 9), &row(11, "new"));
    store.commit(batch).unwrap();
    // A flush removes what it moved to a segment: the frozen view keeps it.
    store.delete_unchanged(&[(key(7, 3).into(), 3)]).unwrap();

    let seqs = |view: &HotRows| -> Vec<i64> {
        let scan = view.scan_rows(&Scope::table(7), None, 100).unwrap();
        assert!(scan.resume_after.is_none());
        scan.rows.iter().map(|(_, r)| r.seq).collect()
    };
    assert_eq!(seqs(&frozen), [1, 2, 3]);
    assert_eq!(seqs(&current), [10, 11]);
    assert_eq!(frozen.get_row(&key(7, 1)).unwrap(), Some(row(1, "before")));
    assert_eq!(current.get_row(&key(7, 1)).unwrap(), Some(row(10, "after")));
    assert_eq!(frozen.get_row(&key(7, 9)).unwrap(), None);
    let range = |view: &HotRows| view.key_range(&Scope::table(7)).unwrap().unwrap();
    assert_eq!(range(&frozen).1.as_ref(), key(7, 3).as_slice());
    assert_eq!(range(&current).1.as_ref(), key(7, 9).as_slice());
    // The clone shares the moment; the store outlives neither.
    let again = frozen.clone();
    drop(frozen);
    assert_eq!(seqs(&again), [1, 2, 3]);
}
