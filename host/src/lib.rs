//! Rill's host: the stream engine, the plugin manager and the process.

pub mod admission;
pub mod cluster;
pub mod config;
pub mod db;
pub mod engine;
pub mod http;
pub mod net;
pub mod plugin;
pub mod server;
pub mod storage;
