//! The recording index: one row per recorded file.

use std::sync::atomic::{AtomicI64, Ordering};

use serde::{Deserialize, Serialize};
use sqlx::any::AnyRow;
use sqlx::{AnyPool, Row as _};

/// Most rows one query returns.
pub const MAX_ROWS: u32 = 10_000;

/// One recorded file. Times are wall-clock microseconds (UTC).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Row {
    pub id: i64,
    pub stream: String,
    pub format: String,
    pub path: String,
    pub group: String,
    pub codecs: String,
    pub start_us: i64,
    pub end_us: i64,
    pub duration_us: i64,
    pub bytes: i64,
    pub done: bool,
    /// The node that wrote it ('' from before nodes were recorded).
    pub node: String,
}

/// Which rows (`recordings_query`'s JSON, and the API's filters).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Query {
    pub id: Option<i64>,
    pub stream: Option<String>,
    /// Rows overlapping `[from, to)`.
    pub from: Option<i64>,
    pub to: Option<i64>,
    pub unfinished: bool,
    pub group: Option<String>,
    pub limit: Option<u32>,
    /// Only this node's rows (and those without a node); the host sets it
    /// for plugins, whose files are on its disk.
    #[serde(skip)]
    pub node: Option<String>,
}

static LAST_ID: AtomicI64 = AtomicI64::new(0);

/// A new row id: the wall clock in µs shifted left by 8 bits, plus 8
/// random bits, so ids sort by creation and two nodes sharing a database
/// almost never pick the same; increasing within a process.
pub fn new_id(wall_us: i64) -> i64 {
    let rand = (std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0)
        ^ std::process::id().wrapping_mul(2_654_435_761)) as i64
        & 0xff;
    let want = (wall_us.max(0) << 8) | rand;
    let mut last = LAST_ID.load(Ordering::Relaxed);
    loop {
        let id = want.max(last + 1);
        match LAST_ID.compare_exchange_weak(last, id, Ordering::Relaxed, Ordering::Relaxed) {
            Ok(_) => return id,
            Err(now) => last = now,
        }
    }
}

const COLUMNS: &str =
    "id, stream, format, path, grp, codecs, start_us, end_us, duration_us, bytes, done, node";

fn from_row(r: &AnyRow) -> Result<Row, sqlx::Error> {
    Ok(Row {
        id: r.try_get("id")?,
        stream: r.try_get("stream")?,
        format: r.try_get("format")?,
        path: r.try_get("path")?,
        group: r.try_get("grp")?,
        codecs: r.try_get("codecs")?,
        start_us: r.try_get("start_us")?,
        end_us: r.try_get("end_us")?,
        duration_us: r.try_get("duration_us")?,
        bytes: r.try_get("bytes")?,
        done: r.try_get::<i64, _>("done")? != 0,
        node: r.try_get("node")?,
    })
}

pub async fn insert(db: &mut sqlx::AnyConnection, r: &Row) -> Result<(), sqlx::Error> {
    sqlx::query(&format!(
        "INSERT INTO recordings ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)"
    ))
    .bind(r.id)
    .bind(&r.stream)
    .bind(&r.format)
    .bind(&r.path)
    .bind(&r.group)
    .bind(&r.codecs)
    .bind(r.start_us)
    .bind(r.end_us)
    .bind(r.duration_us)
    .bind(r.bytes)
    .bind(r.done as i64)
    .bind(&r.node)
    .execute(db)
    .await
    .map(drop)
}

pub async fn update(db: &mut sqlx::AnyConnection, r: &Row) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE recordings SET grp = $1, codecs = $2, start_us = $3, end_us = $4,
         duration_us = $5, bytes = $6, done = $7 WHERE id = $8",
    )
    .bind(&r.group)
    .bind(&r.codecs)
    .bind(r.start_us)
    .bind(r.end_us)
    .bind(r.duration_us)
    .bind(r.bytes)
    .bind(r.done as i64)
    .bind(r.id)
    .execute(db)
    .await
    .map(drop)
}

pub async fn query(pool: &AnyPool, q: &Query) -> Result<Vec<Row>, sqlx::Error> {
    let mut sql = format!("SELECT {COLUMNS} FROM recordings WHERE 1 = 1");
    let mut n = 0;
    let mut next = || {
        n += 1;
        format!("${n}")
    };
    // Placeholders first, in bind order.
    if q.id.is_some() {
        sql += &format!(" AND id = {}", next());
    }
    if q.stream.is_some() {
        sql += &format!(" AND stream = {}", next());
    }
    if q.group.is_some() {
        sql += &format!(" AND grp = {}", next());
    }
    if q.node.is_some() {
        sql += &format!(" AND (node = {} OR node = '')", next());
    }
    if q.to.is_some() {
        sql += &format!(" AND start_us < {}", next());
    }
    if q.from.is_some() {
        sql += &format!(" AND end_us > {}", next());
    }
    if q.unfinished {
        sql += " AND done = 0";
    }
    let limit = q.limit.unwrap_or(MAX_ROWS).min(MAX_ROWS);
    sql += &format!(" ORDER BY start_us, id LIMIT {limit}");
    let mut query = sqlx::query(&sql);
    if let Some(id) = q.id {
        query = query.bind(id);
    }
    if let Some(s) = &q.stream {
        query = query.bind(s.clone());
    }
    if let Some(g) = &q.group {
        query = query.bind(g.clone());
    }
    if let Some(n) = &q.node {
        query = query.bind(n.clone());
    }
    if let Some(t) = q.to {
        query = query.bind(t);
    }
    if let Some(f) = q.from {
        query = query.bind(f);
    }
    query.fetch_all(pool).await?.iter().map(from_row).collect()
}

pub async fn get(pool: &AnyPool, id: i64) -> Result<Option<Row>, sqlx::Error> {
    sqlx::query(&format!("SELECT {COLUMNS} FROM recordings WHERE id = $1"))
        .bind(id)
        .fetch_optional(pool)
        .await?
        .as_ref()
        .map(from_row)
        .transpose()
}

/// Deletes row `id` and its file (a file already gone is no error).
pub async fn delete(pool: &AnyPool, row: &Row) -> Result<(), String> {
    match tokio::fs::remove_file(&row.path).await {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(format!("{}: {e}", row.path)),
    }
    sqlx::query("DELETE FROM recordings WHERE id = $1")
        .bind(row.id)
        .execute(pool)
        .await
        .map(drop)
        .map_err(|e| e.to_string())
}

/// Retention of `group` on `node` (its rows and those without a node):
/// finished rows older than `max_age_us`, then the oldest while the group
/// is over `max_bytes`. Returns the rows deleted.
pub async fn expire(
    pool: &AnyPool,
    node: &str,
    group: &str,
    max_age_us: i64,
    max_bytes: u64,
) -> Result<u64, sqlx::Error> {
    let rows: Vec<Row> = sqlx::query(&format!(
        "SELECT {COLUMNS} FROM recordings WHERE grp = $1 AND (node = $2 OR node = '') AND done = 1
         ORDER BY start_us, id"
    ))
    .bind(group)
    .bind(node)
    .fetch_all(pool)
    .await?
    .iter()
    .map(from_row)
    .collect::<Result<_, _>>()?;
    let now = crate::engine::wall_us();
    let mut total: u64 = rows.iter().map(|r| r.bytes.max(0) as u64).sum();
    let mut deleted = 0;
    for r in &rows {
        let old = max_age_us > 0 && r.start_us < now - max_age_us;
        let over = max_bytes > 0 && total > max_bytes;
        if !old && !over {
            break;
        }
        match delete(pool, r).await {
            Ok(()) => {
                total -= r.bytes.max(0) as u64;
                deleted += 1;
                tracing::info!(stream = %r.stream, path = %r.path, "recording expired");
            }
            Err(e) => tracing::warn!("recording {} not expired: {e}", r.id),
        }
    }
    Ok(deleted)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_increase() {
        let a = new_id(1_000);
        let b = new_id(1_000);
        let c = new_id(999);
        assert!(a < b && b < c);
    }
}
