//! Socket plumbing shared by the host's services.

pub mod mmsg;
