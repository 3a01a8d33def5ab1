//! The HTTP listener: accepts connections under two caps, in all and per
//! client address, gives each connection a time to send each request head
//! (which is also how long a kept-alive connection may sit idle), and
//! serves the router on it, WebSocket upgrades included.
//!
//! A connection past a cap is closed as soon as it is accepted, so that
//! it holds no file for longer than that, while the connections already
//! open, and clients from other addresses, go on being served. An upgraded
//! WebSocket keeps its place under the caps for as long as it is open.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use dashmap::DashMap;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower::ServiceExt as _;

/// What the listener allows.
#[derive(Debug, Clone, Copy)]
pub struct ConnectionLimits {
    /// Connections open at once, HTTP and WebSocket.
    pub max_connections: usize,
    /// Connections open at once from one client address.
    pub max_per_address: usize,
    /// Time a connection has to send a request's head, counted from when
    /// it is ready for one: a slow client's head, or an idle kept-alive
    /// connection, is closed after it.
    pub header_timeout: Duration,
    /// Time in-flight requests get to finish once the node stops.
    pub shutdown_grace: Duration,
}

/// Open connections, in all and by address.
#[derive(Debug)]
struct Counts {
    limits: ConnectionLimits,
    total: AtomicUsize,
    by_address: DashMap<IpAddr, usize>,
}

/// One connection's place under the caps, given back when it closes.
#[derive(Debug)]
struct Slot {
    counts: Arc<Counts>,
    address: IpAddr,
}

impl Counts {
    fn take(self: &Arc<Self>, address: IpAddr) -> Option<Slot> {
        if self.total.fetch_add(1, Ordering::AcqRel) >= self.limits.max_connections {
            self.total.fetch_sub(1, Ordering::AcqRel);
            return None;
        }
        let mut held = self.by_address.entry(address).or_default();
        if *held >= self.limits.max_per_address {
            drop(held);
            self.total.fetch_sub(1, Ordering::AcqRel);
            return None;
        }
        *held += 1;
        Some(Slot {
            counts: self.clone(),
            address,
        })
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.counts.total.fetch_sub(1, Ordering::AcqRel);
        self.counts
            .by_address
            .remove_if_mut(&self.address, |_, held| {
                *held -= 1;
                *held == 0
            });
    }
}

/// A socket that holds its slot for as long as it lives (an upgrade moves
/// it, slot and all, into the WebSocket).
struct Counted {
    tcp: TcpStream,
    _slot: Slot,
}

impl AsyncRead for Counted {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.tcp).poll_read(cx, buf)
    }
}

impl AsyncWrite for Counted {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.tcp).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.tcp).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.tcp).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.tcp).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.tcp.is_write_vectored()
    }
}

/// Serves `router` on `listener` until `shutdown` is cancelled; then
/// accepts no more connections and gives those open
/// `limits.shutdown_grace` to finish their requests.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: ConnectionLimits,
    shutdown: CancellationToken,
) -> io::Result<()> {
    let counts = Arc::new(Counts {
        limits,
        total: AtomicUsize::new(0),
        by_address: DashMap::new(),
    });
    let mut http = http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout)
        .keep_alive(true);
    let connections = TaskTracker::new();
    let stopping = shutdown.clone();
    loop {
        let (tcp, peer) = tokio::select! {
            biased;
            _ = shutdown.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of files, or a connection reset before it was
                    // accepted: the listener itself is fine.
                    tracing::warn!(error = %e, "accepting a connection failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let Some(slot) = counts.take(peer.ip()) else {
            tracing::debug!(%peer, "connection refused: [server] connection caps reached");
            drop(tcp);
            continue;
        };
        // Small answers and notifications go out at once, not after the
        // peer's delayed acknowledgement.
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::debug!(error = %e, "cannot set TCP_NODELAY");
        }
        let io = TokioIo::new(Counted { tcp, _slot: slot });
        let connection = http
            .serve_connection(io, service(router.clone(), peer))
            .with_upgrades();
        let stopping = stopping.clone();
        connections.spawn(async move {
            let mut connection = std::pin::pin!(connection);
            let ended = tokio::select! {
                ended = connection.as_mut() => ended,
                _ = stopping.cancelled() => {
                    // The request in flight, if any, is answered; then the
                    // connection closes.
                    connection.as_mut().graceful_shutdown();
                    connection.await
                }
            };
            if let Err(e) = ended {
                tracing::debug!(error = %e, %peer, "connection ended with an error");
            }
        });
    }
    drop(listener);
    connections.close();
    if tokio::time::timeout(limits.shutdown_grace, connections.wait())
        .await
        .is_err()
    {
        tracing::warn!(
            seconds = limits.shutdown_grace.as_secs(),
            "requests still running after [server] shutdown_timeout_secs; they end with the \
             process, unanswered"
        );
    }
    Ok(())
}

/// The router, for one connection from `peer`.
fn service(
    router: Router,
    peer: SocketAddr,
) -> impl hyper::service::Service<
    hyper::Request<hyper::body::Incoming>,
    Response = axum::response::Response,
    Error = std::convert::Infallible,
    Future = impl Future<Output = Result<axum::response::Response, std::convert::Infallible>> + Send,
> + Clone {
    hyper::service::service_fn(move |mut request: hyper::Request<hyper::body::Incoming>| {
        request.extensions_mut().insert(ConnectInfo(peer));
        router.clone().oneshot(request.map(axum::body::Body::new))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caps_hold_in_all_and_per_address_and_slots_come_back() {
        let counts = Arc::new(Counts {
            limits: ConnectionLimits {
                max_connections: 3,
                max_per_address: 2,
                header_timeout: Duration::from_secs(1),
                shutdown_grace: Duration::from_secs(1),
            },
            total: AtomicUsize::new(0),
            by_address: DashMap::new(),
        });
        let a = IpAddr::from([10, 0, 0, 1]);
        let b = IpAddr::from([10, 0, 0, 2]);
        let first = counts.take(a).unwrap();
        let _second = counts.take(a).unwrap();
        assert!(counts.take(a).is_none(), "per address");
        let _third = counts.take(b).unwrap();
        assert!(counts.take(IpAddr::from([10, 0, 0, 3])).is_none(), "in all");
        drop(first);
        let _again = counts.take(a).unwrap();
        assert_eq!(counts.total.load(Ordering::Acquire), 3);
        drop(_again);
        drop(_third);
        assert!(
            !counts.by_address.contains_key(&b),
            "no entry is left behind"
        );
    }
}
