use super::*;
use crate::cold::{PAGE_ROWS, SegmentOptions};
use arrow::datatypes::{Field, Schema};

fn key(i: u32) -> Vec<u8> {
    format!("k{i:08}").into_bytes()
}

/// The footer, with its page index, of a segment of `rows` sorted keys
/// in row groups of `group_rows`.
async fn segment(rows: u32, group_rows: usize) -> ParquetMetaData {
    let dir = tempfile::tempdir().unwrap();
    let (tables, segment) = tables_with_segment(dir.path(), 0, rows, group_rows).await;
    let footer = tables.cold().footer(&segment).await.unwrap();
    footer.metadata().clone()
}

fn rows(spans: &[PageSpan]) -> usize {
    spans.iter().map(|s| s.rows).sum()
}

#[tokio::test]
async fn a_point_read_selects_one_page_of_one_row_group() {
    let metadata = segment(100_000, 40_000).await;
    assert_eq!(metadata.num_row_groups(), 3);

    let keys = BTreeSet::from([key(45_678)]);
    let spans = pages_holding(&metadata, &keys);
    assert_eq!(spans.len(), 1, "{spans:?}");
    let span = spans[0];
    assert_eq!(span.group, 1);
    assert!(span.rows > 0 && span.rows <= PAGE_ROWS, "{span:?}");
    assert!(
        (span.first_row..span.first_row + span.rows).contains(&5_678),
        "the span holds the key's row: {span:?}"
    );

    // Keys in two row groups: a page of each.
    let keys = BTreeSet::from([key(10), key(99_999)]);
    let spans = pages_holding(&metadata, &keys);
    let groups: Vec<usize> = spans.iter().map(|s| s.group).collect();
    assert_eq!(groups, vec![0, 2]);
    assert!(rows(&spans) <= 2 * PAGE_ROWS);

    // Keys no page holds select nothing.
    let keys = BTreeSet::from([b"j".to_vec(), key(100_000)]);
    assert!(pages_holding(&metadata, &keys).is_empty());
}

#[test]
fn rows_holding_finds_every_version_of_each_key() {
    let page = BinaryArray::from_iter_values([b"b", b"d", b"d", b"f", b"h"]);
    let keys = |ks: &[&[u8]]| ks.iter().map(|k| k.to_vec()).collect::<BTreeSet<_>>();
    assert_eq!(rows_holding(&page, &keys(&[b"d"])), vec![1, 2]);
    assert_eq!(rows_holding(&page, &keys(&[b"b", b"h"])), vec![0, 4]);
    assert_eq!(
        rows_holding(&page, &keys(&[b"a", b"c", b"i"])),
        Vec::<u32>::new()
    );
    let empty = BinaryArray::from_iter_values(Vec::<&[u8]>::new());
    assert!(rows_holding(&empty, &keys(&[b"d"])).is_empty());
}

/// A node's tiers over a fresh directory, with a page cache of
/// `cache_bytes`, and one published-shape segment of `rows` rows in row
/// groups of `group_rows` (`c1` = the row number, every tenth a delete
/// marker).
async fn tables_with_segment(
    dir: &std::path::Path,
    cache_bytes: u64,
    rows: u32,
    group_rows: usize,
) -> (ColdTables, Segment) {
    let cold = ColdStore::local(&dir.join("cold"))
        .unwrap()
        .with_page_cache(cache_bytes);
    let store = Arc::new(
        Store::open(&dir.join("rocks"), &crate::backend::StoreOptions::default()).unwrap(),
    );
    // Opening removes files no manifest names: open first.
    let tables = ColdTables::open(store, cold).unwrap();
    let schema = Arc::new(Schema::new(vec![
        Field::new(KEY_COLUMN, DataType::Binary, false),
        Field::new("c1", DataType::Int64, true),
        Field::new(SEQ_COLUMN, DataType::Int64, false),
        Field::new(DELETED_COLUMN, DataType::Boolean, false),
    ]));
    let options = SegmentOptions {
        row_group_rows: group_rows,
        key_column: None,
    };
    let mut writer = tables
        .cold()
        .segment_writer(schema.clone(), &options)
        .unwrap();
    let keys: Vec<Vec<u8>> = (0..rows).map(key).collect();
    let batch = RecordBatch::try_new(
        schema,
        vec![
            Arc::new(BinaryArray::from_iter_values(&keys)),
            Arc::new(Int64Array::from_iter_values(0..rows as i64)),
            Arc::new(Int64Array::from_iter_values(0..rows as i64)),
            Arc::new(BooleanArray::from_iter(
                (0..rows).map(|i| Some(i % 10 == 0)),
            )),
        ],
    )
    .unwrap();
    writer.write(&batch).unwrap();
    let path = "t1/seg-1.parquet".to_string();
    let bytes = writer.finish(&path).await.unwrap();
    let segment = Segment {
        path,
        schema_version: 1,
        columns: vec![1],
        rows: rows as u64,
        tombstones: (rows as u64).div_ceil(10),
        bytes,
        min_seq: 0,
        max_seq: rows as i64 - 1,
        min_key: crate::cold::to_hex(&key(0)),
        max_key: crate::cold::to_hex(&key(rows - 1)),
        stats: BTreeMap::new(),
    };
    (tables, segment)
}

#[tokio::test]
async fn point_reads_are_answered_from_cached_pages() {
    let dir = tempfile::tempdir().unwrap();
    let (tables, segment) = tables_with_segment(dir.path(), 1 << 20, 20_000, 8_192).await;
    let wanted = BTreeSet::from([key(12_345), key(12_346), key(12_350), key(30_000)]);
    let found = tables.read_keys(&segment, &wanted).await.unwrap();
    let found: Vec<(Vec<u8>, i64, bool)> = found
        .into_iter()
        .map(|(k, row)| (k, row.seq, row.deleted))
        .collect();
    assert_eq!(
        found,
        vec![
            (key(12_345), 12_345, false),
            (key(12_346), 12_346, false),
            (key(12_350), 12_350, true),
        ]
    );
    assert_eq!(tables.cold().cached_pages(), 1, "one page decoded and kept");

    // With the file gone, the footer and the page still answer.
    std::fs::remove_file(dir.path().join("cold/t1/seg-1.parquet")).unwrap();
    let again = tables
        .read_keys(&segment, &BTreeSet::from([key(12_347)]))
        .await
        .unwrap();
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].1.cells, vec![(1, Value::Int64(12_347))]);
    // A page not cached has to be read, and cannot be.
    assert!(
        tables
            .read_keys(&segment, &BTreeSet::from([key(1)]))
            .await
            .is_err()
    );
}

#[tokio::test]
async fn the_page_cache_keeps_no_more_than_its_capacity() {
    for capacity in [0, 1024] {
        let dir = tempfile::tempdir().unwrap();
        let (tables, segment) = tables_with_segment(dir.path(), capacity, 20_000, 8_192).await;
        for k in [5, 5_000, 15_000] {
            let found = tables
                .read_keys(&segment, &BTreeSet::from([key(k)]))
                .await
                .unwrap();
            assert_eq!(found.len(), 1, "capacity {capacity}, key {k}");
            assert_eq!(found[0].1.cells, vec![(1, Value::Int64(k as i64))]);
        }
        assert_eq!(
            tables.cold().cached_pages(),
            0,
            "a {capacity}-byte cache holds no page"
        );
    }
}

#[tokio::test]
async fn a_deleted_segment_leaves_the_page_cache() {
    let dir = tempfile::tempdir().unwrap();
    let (tables, segment) = tables_with_segment(dir.path(), 1 << 20, 20_000, 8_192).await;
    for k in [5, 12_345] {
        let found = tables
            .read_keys(&segment, &BTreeSet::from([key(k)]))
            .await
            .unwrap();
        assert_eq!(found.len(), 1, "key {k}");
    }
    assert_eq!(tables.cold().cached_pages(), 2, "a page of each row group");
    assert!(tables.cold().cached_page_bytes() > 0);

    tables.cold().delete(&segment.path).await.unwrap();
    assert_eq!(tables.cold().cached_pages(), 0);
    assert_eq!(tables.cold().cached_page_bytes(), 0);
}
