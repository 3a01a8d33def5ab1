//! SQL through the query engine, without HTTP: single-row INSERT,
//! 50-row INSERT and primary-key SELECT on a table of 10,000 rows.

use criterion::{Criterion, criterion_group, criterion_main};
use quiver_benches::BenchNode;
use serde_json::Value;

fn sql(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let node = BenchNode::new();
    runtime.block_on(async {
        node.run(
            "CREATE TABLE default.kv (id BIGINT PRIMARY KEY, name TEXT, score DOUBLE)",
            &[],
        )
        .await;
        for chunk in 0..10 {
            let values: Vec<String> = (0..1000)
                .map(|i| {
                    let id = chunk * 1000 + i;
                    format!("({id}, 'name-{id}', {id}.5)")
                })
                .collect();
            node.run(&format!("INSERT INTO kv VALUES {}", values.join(",")), &[])
                .await;
        }
    });

    let mut next_id = 1_000_000i64;
    c.bench_function("insert_single_row", |b| {
        b.iter(|| {
            next_id += 1;
            runtime.block_on(node.run(
                "INSERT INTO kv VALUES ($1, $2, $3)",
                &[Value::from(next_id), Value::from("bench"), Value::from(1.5)],
            ))
        })
    });

    c.bench_function("insert_50_rows", |b| {
        b.iter(|| {
            let values: Vec<String> = (0..50)
                .map(|_| {
                    next_id += 1;
                    format!("({next_id}, 'bench', 2.5)")
                })
                .collect();
            runtime.block_on(node.run(&format!("INSERT INTO kv VALUES {}", values.join(",")), &[]))
        })
    });

    let mut probe = 0i64;
    c.bench_function("select_by_primary_key", |b| {
        b.iter(|| {
            probe = (probe + 7919) % 10_000;
            let found = runtime.block_on(node.run(
                "SELECT name, score FROM kv WHERE id = $1",
                &[Value::from(probe)],
            ));
            assert_eq!(found, 1);
        })
    });
}

criterion_group!(benches, sql);
criterion_main!(benches);
