//! [`Registry`] on Redis (the `redis` crate's connection manager, which
//! reconnects by itself). Claims are plain keys with a PX time to live;
//! the checks "still mine?" run as Lua scripts, so no other node can slip
//! in between the read and the write.

use std::collections::BTreeSet;
use std::future::Future;
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{RedisResult, Script};

use super::registry::{
    id_of_node_key, node_key, path_of_stream_key, stream_key, Claim, NodeRecord, Nodes, Registry,
    RegistryFuture, PREFIX,
};

/// Longest wait for one Redis call (or one batch of them): a hung Redis
/// must not hang a heartbeat, a player waiting for a stream, or the API.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(1);

/// Longest `GET /api/v1/cluster` read (many SCAN rounds).
const LIST_TIMEOUT: Duration = Duration::from_secs(3);

/// Most keys one listing reads.
pub const MAX_LISTED_KEYS: usize = 10_000;

/// SCAN's COUNT hint, and the largest MGET.
const SCAN_COUNT: usize = 500;

/// Most SCAN rounds per pattern: a large keyspace with few of our keys
/// would otherwise take many rounds.
const MAX_SCAN_ROUNDS: usize = 200;

/// Script calls in flight at once (they pipeline on the one connection).
const BATCH: usize = 256;

/// Renews a claim if it is absent or ours; answers 0 when another node
/// holds it. A value that is not a claim (garbage) is overwritten.
const REFRESH_LUA: &str = r#"
local v = redis.call('GET', KEYS[1])
if v then
  local ok, claim = pcall(cjson.decode, v)
  if ok and type(claim) == 'table' and claim.node_id ~= ARGV[1] then
    return 0
  end
end
redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
return 1
"#;

/// Deletes a claim only if it is ours.
const UNREGISTER_LUA: &str = r#"
local v = redis.call('GET', KEYS[1])
if not v then return 0 end
local ok, claim = pcall(cjson.decode, v)
if ok and type(claim) == 'table' and claim.node_id == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"#;

pub struct RedisRegistry {
    con: ConnectionManager,
    node_id: String,
    ttl_ms: u64,
    refresh: Script,
    unregister: Script,
}

/// `f`, given [`CALL_TIMEOUT`]; errors name `what`.
async fn bounded<T>(what: &str, f: impl Future<Output = RedisResult<T>>) -> Result<T, String> {
    within(what, CALL_TIMEOUT, async {
        f.await.map_err(|e| e.to_string())
    })
    .await
}

async fn within<T>(
    what: &str,
    limit: Duration,
    f: impl Future<Output = Result<T, String>>,
) -> Result<T, String> {
    match tokio::time::timeout(limit, f).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(format!("{what}: {e}")),
        Err(_) => Err(format!("{what}: Redis did not answer within {limit:?}")),
    }
}

impl RedisRegistry {
    /// A registry on `url` (`redis://[:password@]host:port/db`); connects
    /// lazily, so a Redis that is down at start is not an error here.
    /// Call inside the runtime.
    pub fn new(url: &str, node_id: String, ttl: Duration) -> Result<RedisRegistry, String> {
        let client = redis::Client::open(url).map_err(|e| format!("cluster.redis: {e}"))?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(CALL_TIMEOUT))
            .set_response_timeout(Some(CALL_TIMEOUT))
            // One attempt per call: the heartbeat is the retry loop.
            .set_number_of_retries(0);
        let con = ConnectionManager::new_lazy_with_config(client, config)
            .map_err(|e| format!("cluster.redis: {e}"))?;
        Ok(RedisRegistry {
            con,
            node_id,
            ttl_ms: ttl.as_millis().clamp(1, u64::MAX as u128) as u64,
            refresh: Script::new(REFRESH_LUA),
            unregister: Script::new(UNREGISTER_LUA),
        })
    }

    /// Unregisters each path (where ours), [`BATCH`] at a time.
    async fn unregister_all(&self, paths: &[String]) -> Result<(), String> {
        for chunk in paths.chunks(BATCH) {
            let calls = chunk.iter().map(|p| {
                let mut con = self.con.clone();
                async move {
                    self.unregister
                        .key(stream_key(p))
                        .arg(&self.node_id)
                        .invoke_async::<i64>(&mut con)
                        .await
                }
            });
            let results = bounded("unregister", async {
                Ok(futures_util::future::join_all(calls).await)
            })
            .await?;
            for r in results {
                r.map_err(|e| format!("unregister: {e}"))?;
            }
        }
        Ok(())
    }

    /// The keys matching `pattern`, at most `budget` of them; the bool
    /// says whether some were left out.
    async fn scan(&self, pattern: &str, budget: usize) -> Result<(Vec<String>, bool), String> {
        let mut con = self.con.clone();
        let mut keys = BTreeSet::new();
        let mut cursor: u64 = 0;
        for _ in 0..MAX_SCAN_ROUNDS {
            let (next, batch): (u64, Vec<String>) = bounded(
                "SCAN",
                redis::cmd("SCAN")
                    .arg(cursor)
                    .arg("MATCH")
                    .arg(pattern)
                    .arg("COUNT")
                    .arg(SCAN_COUNT)
                    .query_async(&mut con),
            )
            .await?;
            for k in batch {
                if keys.len() >= budget {
                    return Ok((keys.into_iter().collect(), true));
                }
                keys.insert(k);
            }
            if next == 0 {
                return Ok((keys.into_iter().collect(), false));
            }
            cursor = next;
        }
        Ok((keys.into_iter().collect(), true))
    }

    /// The values of `keys` (absent ones skipped), [`SCAN_COUNT`] at a time.
    async fn values(&self, keys: &[String]) -> Result<Vec<(String, String)>, String> {
        let mut con = self.con.clone();
        let mut out = Vec::with_capacity(keys.len());
        for chunk in keys.chunks(SCAN_COUNT) {
            let values: Vec<Option<String>> =
                bounded("MGET", redis::cmd("MGET").arg(chunk).query_async(&mut con)).await?;
            out.extend(
                chunk
                    .iter()
                    .zip(values)
                    .filter_map(|(k, v)| Some((k.clone(), v?))),
            );
        }
        Ok(out)
    }

    async fn list(&self) -> Result<Nodes, String> {
        let (node_keys, t1) = self
            .scan(&format!("{PREFIX}node:*"), MAX_LISTED_KEYS)
            .await?;
        let left = MAX_LISTED_KEYS.saturating_sub(node_keys.len());
        let (stream_keys, t2) = self.scan(&format!("{PREFIX}stream:*"), left).await?;
        // Values that do not parse (another writer's, or garbage) are
        // left out rather than failing the whole list.
        let records = self
            .values(&node_keys)
            .await?
            .into_iter()
            .filter_map(|(k, v)| {
                let id = id_of_node_key(&k)?.to_owned();
                Some((id, serde_json::from_str::<NodeRecord>(&v).ok()?))
            });
        let claims = self
            .values(&stream_keys)
            .await?
            .into_iter()
            .filter_map(|(k, v)| {
                let path = path_of_stream_key(&k)?.to_owned();
                Some((path, serde_json::from_str::<Claim>(&v).ok()?))
            });
        Ok(Nodes::assemble(records, claims, t1 || t2))
    }
}

impl Registry for RedisRegistry {
    fn register<'a>(&'a self, path: &'a str, claim: &'a Claim) -> RegistryFuture<'a, ()> {
        Box::pin(async move {
            let value = serde_json::to_string(claim).map_err(|e| e.to_string())?;
            let mut con = self.con.clone();
            bounded(
                "register",
                redis::cmd("SET")
                    .arg(stream_key(path))
                    .arg(value)
                    .arg("PX")
                    .arg(self.ttl_ms)
                    .query_async::<()>(&mut con),
            )
            .await
        })
    }

    fn refresh<'a>(
        &'a self,
        node: &'a NodeRecord,
        claims: &'a [(String, Claim)],
    ) -> RegistryFuture<'a, Vec<String>> {
        Box::pin(async move {
            let value = serde_json::to_string(node).map_err(|e| e.to_string())?;
            let mut con = self.con.clone();
            bounded(
                "heartbeat",
                redis::cmd("SET")
                    .arg(node_key(&self.node_id))
                    .arg(value)
                    .arg("PX")
                    .arg(self.ttl_ms)
                    .query_async::<()>(&mut con),
            )
            .await?;
            let mut taken = Vec::new();
            for chunk in claims.chunks(BATCH) {
                let calls = chunk.iter().map(|(path, claim)| {
                    let mut con = self.con.clone();
                    async move {
                        let value = serde_json::to_string(claim).unwrap_or_default();
                        self.refresh
                            .key(stream_key(path))
                            .arg(&self.node_id)
                            .arg(value)
                            .arg(self.ttl_ms)
                            .invoke_async::<i64>(&mut con)
                            .await
                    }
                });
                let results = bounded("heartbeat", async {
                    Ok(futures_util::future::join_all(calls).await)
                })
                .await?;
                for ((path, _), r) in chunk.iter().zip(results) {
                    if r.map_err(|e| format!("heartbeat: {e}"))? == 0 {
                        taken.push(path.clone());
                    }
                }
            }
            Ok(taken)
        })
    }

    fn unregister<'a>(&'a self, path: &'a str) -> RegistryFuture<'a, ()> {
        Box::pin(async move {
            let mut con = self.con.clone();
            bounded(
                "unregister",
                self.unregister
                    .key(stream_key(path))
                    .arg(&self.node_id)
                    .invoke_async::<i64>(&mut con),
            )
            .await
            .map(|_| ())
        })
    }

    fn leave<'a>(&'a self, paths: &'a [String]) -> RegistryFuture<'a, ()> {
        Box::pin(async move {
            self.unregister_all(paths).await?;
            let mut con = self.con.clone();
            bounded(
                "leave",
                redis::cmd("DEL")
                    .arg(node_key(&self.node_id))
                    .query_async::<i64>(&mut con),
            )
            .await
            .map(|_| ())
        })
    }

    fn locate<'a>(&'a self, path: &'a str) -> RegistryFuture<'a, Option<Claim>> {
        Box::pin(async move {
            let mut con = self.con.clone();
            let value: Option<String> = bounded(
                "locate",
                redis::cmd("GET")
                    .arg(stream_key(path))
                    .query_async(&mut con),
            )
            .await?;
            // A value that is not a claim names no node to pull from.
            Ok(value.and_then(|v| serde_json::from_str(&v).ok()))
        })
    }

    fn nodes(&self) -> RegistryFuture<'_, Nodes> {
        Box::pin(within("list", LIST_TIMEOUT, self.list()))
    }
}
