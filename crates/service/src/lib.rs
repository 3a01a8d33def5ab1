//! The request service every protocol adapter (HTTP, WebSocket, and next
//! PostgreSQL's wire protocol and Arrow Flight SQL) calls: authentication
//! (credentials in, principal out), sessions, the per-user request rate,
//! the time limit and cancellation, row and byte caps, results handed to
//! the protocol's encoder as they are produced, the slow-query log and
//! request timings. Adapters decode, call it, and encode.

mod auth;
mod error;
mod limits;
mod live;
mod request;
mod signin;

pub use auth::{
    Auth, Credentials, MIN_SECRET_BYTES, Peer, Principal, Tokens, WeakSecret, is_loopback_host,
};
pub use error::ServiceError;
pub use limits::RequestRate;
pub use live::LiveRequest;
pub use request::{
    DIRECT_REQUEST_BYTES, Encoder, Incoming, Reply, RequestService, ResultStream,
    STREAM_CHUNK_BYTES, Setup, SqlRequest, StatementInfo, mask_passwords,
};
