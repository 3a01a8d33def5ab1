//! `GET /metrics`: the node's counters in the OpenMetrics text format that
//! Prometheus scrapes. Request counts and query latencies are recorded as
//! requests finish; everything `system.stats` shows is read at scrape time
//! from the same [`NodeStats`].

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{ConnectInfo, MatchedPath, Request, State};
use axum::http::{HeaderMap, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Registry, Unit};
use quiver_catalog::Catalog;
use quiver_common::{ErrorCode, Role};
use quiver_query::{NodeInfo, NodeStats};

use crate::auth::{credentials, peer};
use crate::error::ApiError;
use crate::routes::ApiState;

const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    /// The route's pattern (`/v1/api/sql`), or `unmatched`.
    endpoint: String,
    status: u16,
}

/// The node's metric registry.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
}

impl Metrics {
    /// The registry of a node; `query_seconds` is the request service's
    /// timing of SQL requests.
    pub fn new(node: Arc<NodeInfo>, catalog: Arc<Catalog>, query_seconds: Histogram) -> Self {
        let mut registry = Registry::default();
        let requests = Family::<RequestLabels, Counter>::default();
        registry.register(
            "quiver_http_requests",
            "HTTP requests answered, by endpoint and status",
            requests.clone(),
        );
        registry.register_with_unit(
            "quiver_query_duration",
            "Time to answer a SQL request, from arrival to the last byte of its result",
            Unit::Seconds,
            query_seconds,
        );
        registry.register_collector(Box::new(NodeCollector { node, catalog }));
        Self { registry, requests }
    }

    /// The whole registry in the text format.
    pub fn render(&self) -> String {
        let mut out = String::with_capacity(4096);
        prometheus_client::encoding::text::encode(&mut out, &self.registry)
            .expect("writing to a String cannot fail");
        out
    }
}

/// Counts every answered request by its route and status.
pub(crate) async fn count_requests(
    State(state): State<ApiState>,
    request: Request,
    next: Next,
) -> Response {
    let endpoint = request
        .extensions()
        .get::<MatchedPath>()
        .map_or("unmatched", MatchedPath::as_str)
        .to_string();
    let response = next.run(request).await;
    state
        .metrics
        .requests
        .get_or_create(&RequestLabels {
            endpoint,
            status: response.status().as_u16(),
        })
        .inc();
    response
}

/// `GET /metrics`.
pub(crate) async fn scrape(
    State(state): State<ApiState>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
) -> Response {
    if !state.config.get().metrics.public {
        let principal = state
            .service
            .authenticate(credentials(&headers), peer(addr, &headers))
            .await;
        let refusal = match principal {
            Err(error) => Some(ApiError::from(error)),
            Ok(principal) if principal.role < Role::Service => Some(ApiError::new(
                ErrorCode::PermissionDenied,
                "/metrics needs the service role or above ([metrics] public = true opens it)",
            )),
            Ok(_) => None,
        };
        if let Some(refusal) = refusal {
            return refusal.into_response();
        }
    }
    (
        [(header::CONTENT_TYPE, CONTENT_TYPE)],
        state.metrics.render(),
    )
        .into_response()
}

/// Reads [`NodeStats`] at each scrape.
#[derive(Debug)]
struct NodeCollector {
    node: Arc<NodeInfo>,
    catalog: Arc<Catalog>,
}

impl Collector for NodeCollector {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        let NodeStats {
            uptime_seconds,
            namespaces,
            tables,
            views,
            hot_bytes,
            cold_bytes,
            websocket_connections,
            live_subscriptions,
            notifications_sent,
            notifications_overflowed,
            rows_read,
            rows_written,
            flushes,
            flush_seconds,
            compactions,
            compaction_seconds,
            fast_path_statements,
            memtable_bytes,
            table_reader_bytes,
            block_cache_bytes,
            page_cache_bytes,
            cached_footers,
        } = self.node.stats(&self.catalog);
        let gauges: [(&str, &str, u64); 13] = [
            (
                "quiver_uptime_seconds",
                "Seconds since the node started",
                uptime_seconds,
            ),
            ("quiver_namespaces", "Namespaces", namespaces),
            ("quiver_tables", "Tables", tables),
            ("quiver_views", "Views", views),
            (
                "quiver_hot_bytes",
                "Approximate bytes of hot (RocksDB) rows",
                hot_bytes,
            ),
            ("quiver_cold_bytes", "Bytes of Parquet segments", cold_bytes),
            (
                "quiver_websocket_connections",
                "Open WebSocket connections",
                websocket_connections,
            ),
            (
                "quiver_live_subscriptions",
                "Live query subscriptions",
                live_subscriptions,
            ),
            (
                "quiver_memtable_bytes",
                "Bytes of RocksDB memtables, active and immutable",
                memtable_bytes,
            ),
            (
                "quiver_table_reader_bytes",
                "Bytes of RocksDB index and filter blocks held outside its block cache",
                table_reader_bytes,
            ),
            (
                "quiver_block_cache_bytes",
                "Bytes of RocksDB's block cache in use",
                block_cache_bytes,
            ),
            (
                "quiver_page_cache_bytes",
                "Bytes of decoded segment pages cached for reads by key",
                page_cache_bytes,
            ),
            (
                "quiver_cached_footers",
                "Segment footers held by the scans' metadata cache",
                cached_footers,
            ),
        ];
        for (name, help, value) in gauges {
            let gauge = ConstGauge::new(value as i64);
            gauge.encode(encoder.encode_descriptor(name, help, None, gauge.metric_type())?)?;
        }
        if let Some(bytes) = resident_bytes() {
            let gauge = ConstGauge::new(bytes as i64);
            gauge.encode(encoder.encode_descriptor(
                "process_resident_memory_bytes",
                "Resident memory of the server process",
                None,
                gauge.metric_type(),
            )?)?;
        }
        let counters: [(&str, &str, u64); 7] = [
            (
                "quiver_notifications",
                "Live query notifications queued for clients",
                notifications_sent,
            ),
            (
                "quiver_notifications_overflowed",
                "Subscriptions ended because their client fell behind",
                notifications_overflowed,
            ),
            (
                "quiver_rows_read",
                "Rows returned to SQL clients",
                rows_read,
            ),
            (
                "quiver_rows_written",
                "Rows inserted, updated or deleted",
                rows_written,
            ),
            ("quiver_flushes", "Flush jobs run", flushes),
            ("quiver_compactions", "Compaction jobs run", compactions),
            (
                "quiver_fast_path_statements",
                "Statements answered without query planning",
                fast_path_statements,
            ),
        ];
        for (name, help, value) in counters {
            encode_counter(&mut encoder, name, help, value)?;
        }
        encode_counter(
            &mut encoder,
            "quiver_flush_seconds",
            "Time spent in flush jobs",
            flush_seconds,
        )?;
        encode_counter(
            &mut encoder,
            "quiver_compaction_seconds",
            "Time spent in compaction jobs",
            compaction_seconds,
        )?;
        Ok(())
    }
}

fn encode_counter<N>(
    encoder: &mut DescriptorEncoder<'_>,
    name: &str,
    help: &str,
    value: N,
) -> Result<(), std::fmt::Error>
where
    ConstCounter<N>: EncodeMetric,
{
    let counter = ConstCounter::new(value);
    counter.encode(encoder.encode_descriptor(name, help, None, counter.metric_type())?)
}

/// The process's resident set size, where the OS tells it (Linux).
fn resident_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}
