//! Live query fan-out, in process: the cost of dispatching one committed
//! change set as subscriptions grow, with equality filters matched through
//! the index and with the same filters evaluated one by one; and the
//! memory an idle subscription costs.
//!
//! `cargo bench --workspace --bench live`

use std::sync::Arc;

use criterion::{BenchmarkId, Criterion, criterion_group};
use datafusion::arrow::array::{ArrayRef, Int64Array, RecordBatch, StringArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::common::DFSchema;
use datafusion::prelude::SessionContext;
use datafusion::scalar::ScalarValue;
use quiver_common::{NodeId, UserId};
use quiver_live::{
    ChangeSet, ConnectionHandle, EqualityKey, LiveLimits, LivePlan, LiveQueryManager,
};
use quiver_store::Scope;

const TABLE: u64 = 7;

fn schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("room", DataType::Utf8, true),
        Field::new("body", DataType::Utf8, true),
        Field::new("_seq", DataType::Int64, false),
    ]))
}

/// A node's manager with `connections` x `per_connection` subscriptions,
/// each to `room = 'r<n>'` for a distinct n.
fn manager(
    connections: usize,
    per_connection: usize,
    indexed: bool,
) -> (LiveQueryManager, Vec<ConnectionHandle>) {
    let live = LiveQueryManager::new(
        NodeId::new("bench").unwrap(),
        LiveLimits {
            max_subscriptions_per_connection: per_connection,
            max_subscriptions_per_user: usize::MAX,
            queue_capacity: 1024,
        },
    );
    let schema = schema();
    let df_schema = DFSchema::try_from(schema.as_ref().clone()).unwrap();
    let ctx = SessionContext::new();
    let mut handles = Vec::new();
    for c in 0..connections {
        let handle = live.connect(UserId::parse("bench").unwrap());
        for s in 0..per_connection {
            let room = format!("r{}", c * per_connection + s);
            let expr = ctx
                .parse_sql_expr(&format!("room = '{room}'"), &df_schema)
                .unwrap();
            let plan = LivePlan {
                namespace: "app".into(),
                table: "messages".into(),
                table_id: TABLE,
                scope: Scope::table(TABLE),
                filter: Some(ctx.create_physical_expr(expr, &df_schema).unwrap()),
                key: indexed.then(|| EqualityKey {
                    column: 1,
                    value: ScalarValue::Utf8(Some(room.clone())),
                }),
                projection: vec![0, 1, 2, 3],
                schema: schema.clone(),
            };
            live.subscribe(handle.id, &format!("s{s}"), "SELECT ...", "{}", plan, 0)
                .unwrap();
        }
        handles.push(handle);
    }
    (live, handles)
}

/// One insert of one row per room in `rooms`.
fn inserts(rooms: &[usize]) -> ChangeSet {
    let n = rooms.len();
    let columns: Vec<ArrayRef> = vec![
        Arc::new(Int64Array::from_iter_values(0..n as i64)),
        Arc::new(StringArray::from_iter_values(
            rooms.iter().map(|r| format!("r{r}")),
        )),
        Arc::new(StringArray::from_iter_values(rooms.iter().map(|_| "hello"))),
        Arc::new(Int64Array::from_iter_values((1..=n as i64).map(|s| s + 1))),
    ];
    let batch = RecordBatch::try_new(schema(), columns).unwrap();
    ChangeSet {
        table_id: TABLE,
        scope: Scope::table(TABLE),
        seqs: (1..=n as i64).map(|s| s + 1).collect(),
        had_old: vec![false; n],
        has_new: vec![true; n],
        old: batch.clone(),
        new: batch,
    }
}

fn drain(handles: &mut [ConnectionHandle]) -> usize {
    let mut received = 0;
    for handle in handles {
        while handle.outbound.try_recv().is_ok() {
            received += 1;
        }
    }
    received
}

fn dispatch(c: &mut Criterion) {
    let mut group = c.benchmark_group("live_dispatch");
    for (connections, per_connection) in [(10, 100), (100, 100)] {
        let total = connections * per_connection;
        for indexed in [true, false] {
            let (live, mut handles) = manager(connections, per_connection, indexed);
            let one = inserts(&[total / 2]);
            let name = if indexed {
                "one_match_indexed"
            } else {
                "one_match_scan"
            };
            group.bench_function(BenchmarkId::new(name, total), |b| {
                b.iter(|| {
                    live.dispatch(&one);
                    assert_eq!(drain(&mut handles), 1);
                })
            });
        }
    }
    let (live, mut handles) = manager(100, 100, true);
    let all = inserts(&(0..10_000).collect::<Vec<_>>());
    group.sample_size(10);
    group.bench_function(BenchmarkId::new("all_match_indexed", 10_000), |b| {
        b.iter(|| {
            live.dispatch(&all);
            assert_eq!(drain(&mut handles), 10_000);
        })
    });
    group.finish();
}

/// Resident memory of this process, in bytes.
fn resident_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(0);
    pages * 4096
}

/// Prints the memory of 100,000 idle subscriptions (1,000 connections x
/// 100), manager state only.
fn idle_memory() {
    let before = resident_bytes();
    let (live, handles) = manager(1000, 100, true);
    let after = resident_bytes();
    let per = (after.saturating_sub(before)) as f64 / 100_000.0;
    println!(
        "idle subscriptions: {} in {} connections, {:.0} bytes each (resident memory)",
        live.subscriptions().len(),
        handles.len(),
        per
    );
}

criterion_group!(benches, dispatch);

fn main() {
    idle_memory();
    benches();
    Criterion::default().configure_from_args().final_summary();
}
