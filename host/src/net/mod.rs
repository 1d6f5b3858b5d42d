//! Socket plumbing shared by the host's services.

pub mod mmsg;
pub mod outq;
pub mod tls_client;
