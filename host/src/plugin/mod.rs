//! Plugins: loading shared libraries, the host side of the C ABI (the
//! function table plugins call, sessions, listeners), generations and hot
//! reload.

mod api;
mod frames;
mod host;
mod instance;
pub mod library;
mod manager;
mod routes;
mod session;
pub mod watch;

pub use manager::{PluginInfo, PluginManager};
pub use session::{HttpReply as PluginReply, HttpRequest as PluginRequest};
