//! Test harness: real Quiver nodes on `127.0.0.1:0` with their own
//! temporary data directories, an HTTP client for them, and the
//! sqllogictest adapters that run `.slt` files in-process and over HTTP,
//! and a WebSocket client of `/v1/ws`.

mod server;
mod slt;
mod ws;

pub use server::{ROOT_BASIC, Response, SqlPoster, TestServer, basic, post_json, test_config};
pub use slt::{HttpDb, InProcessDb, SltError, run_slt_file, slt_files};
pub use ws::WsClient;
