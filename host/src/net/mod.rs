//! Socket plumbing shared by the host's services.

pub mod mmsg;
pub mod tls_client;
