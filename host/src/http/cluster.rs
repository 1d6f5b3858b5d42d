//! `GET /api/v1/cluster`: this node's place in the cluster and every node
//! with the streams it publishes (docs/cluster.md).

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};

use super::AppState;
use crate::cluster::ClusterView;

pub fn router() -> Router<AppState> {
    Router::new().route("/api/v1/cluster", get(cluster))
}

/// Answers even when Redis is down: then `state` is `degraded`, with the
/// reason, and the only node listed is this one.
async fn cluster(State(s): State<AppState>) -> Json<ClusterView> {
    Json(s.cluster.view().await)
}
