//! The `config.toml` model of a Quiver node: typed sections with built-in
//! defaults, unknown keys rejected, every key overridable by a
//! `QUIVER_<SECTION>__<KEY>` environment variable, and validation that names
//! the offending key and where it came from.

mod load;
mod model;
mod shared;

pub use load::{ConfigError, ConfigSource, ENV_PREFIX, load, load_from};
pub use model::{
    AuthConfig, CompactionConfig, Config, DataFusionConfig, FlushConfig, LimitsConfig, LogFormat,
    LoggingConfig, ServerConfig, StorageConfig, WebSocketConfig,
};
pub use shared::{Reload, SharedConfig, reloadable};
