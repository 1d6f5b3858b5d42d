//! Socket plumbing shared by the host's services.

pub mod fds;
pub mod mmsg;
pub mod outq;
pub mod tls_client;
