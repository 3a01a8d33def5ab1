//! TPC-H `lineitem` (scale factor `QUIVER_TPCH_SF`, default 1) loaded into
//! a Quiver table and flushed to one Parquet segment, queried through
//! Quiver's SQL executor and through plain DataFusion reading the same
//! segment file, side by side: Q1, Q6, `count(*)` and a selective
//! primary-key range. Then a scan of 1M hot (unflushed) rows, against the
//! same rows once flushed.
//!
//! `cargo bench -p quiver-benches --bench tpch`

use std::sync::Arc;
use std::time::Instant;

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use datafusion::arrow::array::{Array, ArrayRef, Int64Array, RecordBatch, StringArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use datafusion::prelude::{ParquetReadOptions, SessionContext};
use quiver_benches::BenchNode;
use tpchgen::generators::LineItemGenerator;
use tpchgen_arrow::LineItemArrow;

const COLUMNS: [(&str, &str); 16] = [
    ("l_orderkey", "BIGINT"),
    ("l_partkey", "BIGINT"),
    ("l_suppkey", "BIGINT"),
    ("l_linenumber", "INT"),
    ("l_quantity", "DECIMAL(15,2)"),
    ("l_extendedprice", "DECIMAL(15,2)"),
    ("l_discount", "DECIMAL(15,2)"),
    ("l_tax", "DECIMAL(15,2)"),
    ("l_returnflag", "TEXT"),
    ("l_linestatus", "TEXT"),
    ("l_shipdate", "DATE"),
    ("l_commitdate", "DATE"),
    ("l_receiptdate", "DATE"),
    ("l_shipinstruct", "TEXT"),
    ("l_shipmode", "TEXT"),
    ("l_comment", "TEXT"),
];

const Q1: &str = "SELECT l_returnflag, l_linestatus, SUM(l_quantity) AS sum_qty, \
    SUM(l_extendedprice) AS sum_base_price, \
    SUM(l_extendedprice * (1 - l_discount)) AS sum_disc_price, \
    SUM(l_extendedprice * (1 - l_discount) * (1 + l_tax)) AS sum_charge, \
    AVG(l_quantity) AS avg_qty, AVG(l_extendedprice) AS avg_price, \
    AVG(l_discount) AS avg_disc, COUNT(*) AS count_order \
    FROM lineitem WHERE l_shipdate <= DATE '1998-12-01' - INTERVAL '90' DAY \
    GROUP BY l_returnflag, l_linestatus ORDER BY l_returnflag, l_linestatus";

const Q6: &str = "SELECT SUM(l_extendedprice * l_discount) AS revenue FROM lineitem \
    WHERE l_shipdate >= DATE '1994-01-01' AND l_shipdate < DATE '1995-01-01' \
    AND l_discount BETWEEN 0.05 AND 0.07 AND l_quantity < 24";

const COUNT: &str = "SELECT COUNT(*) FROM lineitem";

/// `lineitem` with `id` (its row number) as the primary key.
fn with_id(batch: &RecordBatch, first_id: i64) -> RecordBatch {
    let mut fields = vec![Field::new("id", DataType::Int64, false)];
    let ids = Int64Array::from_iter_values(first_id..first_id + batch.num_rows() as i64);
    let mut columns: Vec<ArrayRef> = vec![Arc::new(ids)];
    for (field, column) in batch.schema().fields().iter().zip(batch.columns()) {
        let column = column.clone();
        fields.push(Field::new(field.name(), column.data_type().clone(), false));
        columns.push(column);
    }
    RecordBatch::try_new(Arc::new(Schema::new(fields)), columns).expect("batch")
}

fn segment_file(node: &BenchNode, table: &str) -> std::path::PathBuf {
    let catalog = &node.context.catalog;
    let def = catalog
        .table(
            &quiver_common::NamespaceId::new("default").unwrap(),
            &quiver_common::TableName::new(table).unwrap(),
        )
        .expect("table exists");
    let manifest = catalog
        .tier()
        .manifest(&quiver_store::Scope::table(def.def().id.0));
    assert_eq!(manifest.segments.len(), 1, "one segment after the flush");
    node.context
        .config
        .get()
        .storage
        .data_path
        .join("cold")
        .join(&manifest.segments[0].path)
}

/// `lineitem` in `ctx`: a view naming the segment's `c<id>` columns.
async fn register_segment(ctx: &SessionContext, file: &std::path::Path) {
    ctx.register_parquet(
        "segment",
        file.to_str().unwrap(),
        ParquetReadOptions::default(),
    )
    .await
    .expect("registers");
    let renames: Vec<String> = std::iter::once("c1 AS id".to_string())
        .chain(
            COLUMNS
                .iter()
                .enumerate()
                .map(|(i, (name, _))| format!("c{} AS {name}", i + 2)),
        )
        .collect();
    ctx.sql(&format!(
        "CREATE VIEW lineitem AS SELECT {} FROM segment",
        renames.join(", ")
    ))
    .await
    .expect("view");
}

async fn datafusion_rows(ctx: &SessionContext, sql: &str) -> usize {
    let batches = ctx
        .sql(sql)
        .await
        .expect("plans")
        .collect()
        .await
        .expect("runs");
    batches.iter().map(|b| b.num_rows()).sum()
}

fn tpch(c: &mut Criterion) {
    let scale: f64 = std::env::var("QUIVER_TPCH_SF")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1.0);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let node = BenchNode::new();
    let engine = node.context.engine.clone();

    let columns: Vec<String> = COLUMNS.iter().map(|(n, t)| format!("{n} {t}")).collect();
    let loaded = Instant::now();
    let rows = runtime.block_on(async {
        node.run(
            &format!(
                "CREATE TABLE lineitem (id BIGINT PRIMARY KEY, {})",
                columns.join(", ")
            ),
            &[],
        )
        .await;
        let mut rows = 0i64;
        let generator = LineItemGenerator::new(scale, 1, 1);
        for batch in LineItemArrow::new(generator).with_batch_size(65_536) {
            let batch = with_id(&batch.expect("generated"), rows);
            rows += batch.num_rows() as i64;
            engine
                .append_batch("default", "lineitem", &batch)
                .await
                .expect("appends");
        }
        node.run("STORAGE FLUSH TABLE lineitem", &[]).await;
        rows
    });
    eprintln!(
        "loaded and flushed {rows} lineitem rows in {:.1} s",
        loaded.elapsed().as_secs_f64()
    );

    let file = segment_file(&node, "lineitem");
    let plain = SessionContext::new();
    runtime.block_on(register_segment(&plain, &file));

    let middle = rows / 2;
    let range = format!(
        "SELECT SUM(l_quantity) FROM lineitem WHERE id BETWEEN {middle} AND {}",
        middle + 1000
    );
    let queries = [
        ("q1", Q1),
        ("q6", Q6),
        ("count", COUNT),
        ("pk_range", &range),
    ];
    // `QUIVER_TPCH_EXPLAIN=q1,pk_range`: those queries' plans with their
    // metrics (the second run of each), to see where the time goes.
    let explain = std::env::var("QUIVER_TPCH_EXPLAIN").unwrap_or_default();
    for (name, sql) in queries
        .iter()
        .filter(|(n, _)| explain.split(',').any(|e| e == *n))
    {
        let sql = format!("EXPLAIN ANALYZE {sql}");
        runtime.block_on(node.text(&sql));
        eprintln!("{name}, Quiver:\n{}", runtime.block_on(node.text(&sql)));
        let plain_text = runtime.block_on(async {
            plain.sql(&sql).await.unwrap().collect().await.unwrap();
            let batches = plain.sql(&sql).await.unwrap().collect().await.unwrap();
            datafusion::arrow::util::pretty::pretty_format_batches(&batches)
                .unwrap()
                .to_string()
        });
        eprintln!("{name}, DataFusion:\n{plain_text}");
    }
    for (name, sql) in queries {
        let quiver_rows = runtime.block_on(node.run(sql, &[]));
        let plain_rows = runtime.block_on(datafusion_rows(&plain, sql));
        assert_eq!(quiver_rows, plain_rows, "{name}: both return the same rows");
        let mut group = c.benchmark_group(format!("tpch_{name}"));
        group.sample_size(10);
        group.bench_function(BenchmarkId::new("quiver", scale), |b| {
            b.iter(|| runtime.block_on(node.run(sql, &[])))
        });
        group.bench_function(BenchmarkId::new("datafusion", scale), |b| {
            b.iter(|| runtime.block_on(datafusion_rows(&plain, sql)))
        });
        group.finish();
    }

    // 1M rows in the hot store, then the same rows in one segment.
    runtime.block_on(async {
        node.run(
            "CREATE TABLE hot (id BIGINT PRIMARY KEY, v BIGINT, s TEXT); \
             CREATE TABLE cold (id BIGINT PRIMARY KEY, v BIGINT, s TEXT)",
            &[],
        )
        .await;
        let schema = Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, false),
            Field::new("v", DataType::Int64, false),
            Field::new("s", DataType::Utf8, false),
        ]));
        for chunk in 0..100i64 {
            let ids: Vec<i64> = (chunk * 10_000..(chunk + 1) * 10_000).collect();
            let batch = RecordBatch::try_new(
                schema.clone(),
                vec![
                    Arc::new(Int64Array::from(ids.clone())) as Arc<dyn Array>,
                    Arc::new(Int64Array::from_iter_values(ids.iter().map(|i| i % 1000))),
                    Arc::new(StringArray::from_iter_values(
                        ids.iter().map(|i| format!("row-{i}")),
                    )),
                ],
            )
            .expect("batch");
            for table in ["hot", "cold"] {
                engine
                    .append_batch("default", table, &batch)
                    .await
                    .expect("appends");
            }
        }
        node.run("STORAGE FLUSH TABLE cold", &[]).await;
    });
    let mut group = c.benchmark_group("scan_1m");
    group.sample_size(10);
    for table in ["hot", "cold"] {
        let sql = format!("SELECT COUNT(s), SUM(v) FROM {table}");
        group.bench_function(table, |b| b.iter(|| runtime.block_on(node.run(&sql, &[]))));
    }
    group.finish();
}

criterion_group!(benches, tpch);
criterion_main!(benches);
