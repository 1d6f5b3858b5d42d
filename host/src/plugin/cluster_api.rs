//! The cluster call of the host table (ABI 1.5): the lookup runs in
//! `crate::cluster`, its answer comes back to the calling session through
//! `on_io`.

use rill_abi::*;

use super::api::{callback_guard, inst, text};
use super::storage_api::{deliver_to, owner_ok};
use crate::storage::IoDone;

pub(crate) unsafe extern "C" fn cluster_locate(
    host: *mut RillHost,
    conn_id: u64,
    path: RillStr,
    token: u64,
) -> i32 {
    callback_guard("cluster_locate", RILL_ERR_INVALID, RILL_ERR_PANIC, || {
        // SAFETY: per contract; the path is lent for the call.
        let (Some(i), Some(path)) = (unsafe { inst(host) }, unsafe { text(path) }) else {
            return RILL_ERR_INVALID;
        };
        if !i.host.cluster.enabled() {
            return RILL_ERR_UNSUPPORTED;
        }
        if crate::engine::validate_path(path).is_err() {
            return RILL_ERR_INVALID;
        }
        if !owner_ok(&i, conn_id) {
            return RILL_ERR_CLOSED;
        }
        let deliver = deliver_to(&i, conn_id);
        i.host.cluster.locate(
            path,
            Box::new(move |r| {
                deliver(match r {
                    Ok(Some(owner)) => IoDone {
                        token,
                        status: RILL_OK,
                        value: 0,
                        data: serde_json::to_vec(&owner).unwrap_or_default(),
                    },
                    Ok(None) => IoDone::err(token, RILL_ERR_NOT_FOUND),
                    Err(e) => {
                        tracing::debug!("cluster_locate: {e}");
                        IoDone::err(token, RILL_ERR_IO)
                    }
                })
            }),
        );
        RILL_OK
    })
}
