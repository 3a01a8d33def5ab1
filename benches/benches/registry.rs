//! Schema lookup through the `SchemaRegistry` (cached Arrow schema) versus
//! building the Arrow schema from the table definition, for tables of 10,
//! 100 and 1,000 columns in a registry of 1,000 tables.

use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use quiver_catalog::{ColumnDef, SchemaRegistry, TableDef, TableOptions, TableType, build_schema};
use quiver_common::{ColumnType, NamespaceId, TableId, TableName};

const TYPES: [ColumnType; 6] = [
    ColumnType::BigInt,
    ColumnType::Text,
    ColumnType::Double,
    ColumnType::Timestamp,
    ColumnType::Json,
    ColumnType::Boolean,
];

fn table(id: u64, columns: u32) -> TableDef {
    TableDef {
        id: TableId(id),
        namespace: NamespaceId::new("bench").unwrap(),
        name: TableName::new(&format!("t{id}")).unwrap(),
        table_type: TableType::Shared,
        columns: (1..=columns)
            .map(|c| ColumnDef {
                id: c,
                name: format!("c{c}"),
                column_type: TYPES[c as usize % TYPES.len()],
                nullable: c != 1,
                default: None,
                fill: None,
            })
            .collect(),
        hidden_columns: Vec::new(),
        primary_key: Some(1),
        options: TableOptions::default(),
        schema_version: 1,
        next_column_id: columns + 1,
        created_at: 0,
    }
}

fn registry(c: &mut Criterion) {
    let mut group = c.benchmark_group("schema");
    for columns in [10u32, 100, 1000] {
        let registry = SchemaRegistry::default();
        for id in 0..1000u64 {
            registry.put(table(id, if id == 500 { columns } else { 10 }));
        }
        let target = TableId(500);
        // The first lookup computes the schema; the measured ones reuse it.
        let _ = registry.schema(target).unwrap();
        group.bench_with_input(
            BenchmarkId::new("cached_lookup", columns),
            &target,
            |b, id| b.iter(|| black_box(registry.schema(black_box(*id)).unwrap())),
        );
        let def = registry.get(target).unwrap().def().clone();
        group.bench_with_input(
            BenchmarkId::new("build_from_definition", columns),
            &def,
            |b, def| b.iter(|| black_box(build_schema(black_box(def)))),
        );
    }
    group.finish();
}

criterion_group!(benches, registry);
criterion_main!(benches);
