//! The host's database (sqlx): an SQLite file in `state_dir` by default,
//! PostgreSQL when `database.url` says so (what several nodes share). It
//! holds the recording index. Writes from plugins go through one ordered
//! queue, so a row is added before it is updated, and nothing waits for
//! the database on a plugin's thread; the connection is retried until it
//! works, the queue waiting meanwhile (bounded).

pub mod recordings;

use std::time::Duration;

use sqlx::any::AnyPoolOptions;
use sqlx::AnyPool;
use tokio::sync::{mpsc, watch};

pub use recordings::{new_id, Query, Row};

/// Jobs waiting for the database; past this, plugin calls get `AGAIN`.
const QUEUE: usize = 16_384;

/// Schema versions, applied in order, each once.
const MIGRATIONS: &[(i64, &[&str])] = &[
    (
        1,
        &[
            "CREATE TABLE IF NOT EXISTS recordings (
            id BIGINT PRIMARY KEY,
            stream TEXT NOT NULL,
            format TEXT NOT NULL,
            path TEXT NOT NULL,
            grp TEXT NOT NULL,
            codecs TEXT NOT NULL,
            start_us BIGINT NOT NULL,
            end_us BIGINT NOT NULL,
            duration_us BIGINT NOT NULL,
            bytes BIGINT NOT NULL,
            done BIGINT NOT NULL
        )",
            "CREATE INDEX IF NOT EXISTS recordings_stream_start ON recordings (stream, start_us)",
            "CREATE INDEX IF NOT EXISTS recordings_grp_start ON recordings (grp, start_us)",
        ],
    ),
    // The node that wrote each file (several nodes share PostgreSQL, each
    // with its own disk); '' for rows from before: anyone's.
    (
        2,
        &[
            "ALTER TABLE recordings ADD COLUMN node TEXT NOT NULL DEFAULT ''",
            "CREATE INDEX IF NOT EXISTS recordings_node_grp ON recordings (node, grp, start_us)",
        ],
    ),
];

type Reply<T> = Box<dyn FnOnce(Result<T, String>) + Send>;

enum Job {
    Add(Row),
    Update(Row),
    Query(Query, Reply<Vec<Row>>),
    Expire {
        node: String,
        group: String,
        max_age_us: i64,
        max_bytes: u64,
        reply: Reply<u64>,
    },
}

#[derive(Clone)]
pub struct Db {
    jobs: mpsc::Sender<Job>,
    pool: watch::Receiver<Option<AnyPool>>,
    /// What the URL names, for logs and the API (no password).
    pub kind: &'static str,
    /// This node's name: its rows carry it, and plugins see only its rows
    /// (and those from before rows carried one): the files are on its disk.
    /// (Shared: the API's state, this included, is cloned per request.)
    pub node: std::sync::Arc<str>,
}

impl Db {
    /// Starts connecting to `url` (empty: SQLite at `state_dir/rill.db`)
    /// as node `node`; returns at once.
    pub fn open(url: &str, state_dir: &std::path::Path, node: String) -> Db {
        sqlx::any::install_default_drivers();
        let url = if url.is_empty() {
            let _ = std::fs::create_dir_all(state_dir);
            format!("sqlite://{}?mode=rwc", state_dir.join("rill.db").display())
        } else {
            url.to_owned()
        };
        let kind = if url.starts_with("postgres") {
            "postgresql"
        } else {
            "sqlite"
        };
        let (jobs, rx) = mpsc::channel(QUEUE);
        let (pool_tx, pool) = watch::channel(None);
        tokio::spawn(run(url, kind, rx, pool_tx));
        Db {
            jobs,
            pool,
            kind,
            node: node.into(),
        }
    }

    /// No database: every call is refused (benchmarks).
    pub fn none() -> Db {
        let (jobs, _) = mpsc::channel(1);
        let (_, pool) = watch::channel(None);
        Db {
            jobs,
            pool,
            kind: "none",
            node: "".into(),
        }
    }

    /// The pool, once connected and migrated.
    pub fn pool(&self) -> Option<AnyPool> {
        self.pool.borrow().clone()
    }

    fn send(&self, job: Job) -> bool {
        self.jobs.try_send(job).is_ok()
    }

    /// Queues a new row, this node's; false when the queue is full.
    pub fn add(&self, mut row: Row) -> bool {
        row.node = self.node.to_string();
        self.send(Job::Add(row))
    }

    /// Whether `row`'s file is on this node's disk.
    pub fn local(&self, row: &Row) -> bool {
        row.node.is_empty() || *row.node == *self.node
    }

    /// Queues an update of a row's end, duration, size, codecs, group and
    /// done flag.
    pub fn update(&self, row: Row) -> bool {
        self.send(Job::Update(row))
    }

    /// Queues a query of this node's rows, answered after every write
    /// queued before it.
    pub fn query(&self, mut q: Query, reply: Reply<Vec<Row>>) -> bool {
        q.node = Some(self.node.to_string());
        self.send(Job::Query(q, reply))
    }

    /// Queues retention for this node's rows of `group`.
    pub fn expire(
        &self,
        group: String,
        max_age_us: i64,
        max_bytes: u64,
        reply: Reply<u64>,
    ) -> bool {
        self.send(Job::Expire {
            node: self.node.to_string(),
            group,
            max_age_us,
            max_bytes,
            reply,
        })
    }
}

async fn connect(url: &str, kind: &str) -> Result<AnyPool, sqlx::Error> {
    let sqlite = kind == "sqlite";
    let pool = AnyPoolOptions::new()
        .max_connections(if sqlite { 1 } else { 4 })
        .acquire_timeout(Duration::from_secs(10))
        .after_connect(move |conn, _| {
            Box::pin(async move {
                if sqlite {
                    // With WAL, NORMAL syncs at checkpoints rather than at
                    // every commit: the file stays consistent after a
                    // crash, which may lose the last updates (the repair
                    // redoes them from the files).
                    sqlx::Executor::execute(&mut *conn, "PRAGMA synchronous=NORMAL").await?;
                }
                Ok(())
            })
        })
        .connect(url)
        .await?;
    if kind == "sqlite" {
        // Readers (the API) do not block the writer.
        sqlx::query("PRAGMA journal_mode=WAL")
            .execute(&pool)
            .await?;
    }
    migrate(&pool).await?;
    Ok(pool)
}

async fn migrate(pool: &AnyPool) -> Result<(), sqlx::Error> {
    sqlx::query("CREATE TABLE IF NOT EXISTS rill_migrations (version BIGINT PRIMARY KEY)")
        .execute(pool)
        .await?;
    for (version, steps) in MIGRATIONS {
        let done: Option<i64> =
            sqlx::query_scalar("SELECT version FROM rill_migrations WHERE version = $1")
                .bind(*version)
                .fetch_optional(pool)
                .await?;
        if done.is_some() {
            continue;
        }
        let mut tx = pool.begin().await?;
        for sql in *steps {
            sqlx::query(sql).execute(&mut *tx).await?;
        }
        sqlx::query("INSERT INTO rill_migrations (version) VALUES ($1)")
            .bind(*version)
            .execute(&mut *tx)
            .await?;
        // Another node may have applied it at the same moment: fine.
        if let Err(e) = tx.commit().await {
            tracing::debug!("database: migration {version}: {e}");
        }
    }
    Ok(())
}

/// Connects (retrying), then runs the queued jobs in order.
async fn run(
    url: String,
    kind: &'static str,
    mut rx: mpsc::Receiver<Job>,
    pool_tx: watch::Sender<Option<AnyPool>>,
) {
    let mut delay = Duration::from_millis(500);
    let pool = loop {
        match connect(&url, kind).await {
            Ok(p) => break p,
            Err(e) => {
                tracing::error!("database ({kind}): {e}; retrying in {delay:?}");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(30));
            }
        }
    };
    tracing::info!("database ({kind}) ready");
    let _ = pool_tx.send(Some(pool.clone()));
    let mut batch = Vec::new();
    while rx.recv_many(&mut batch, BATCH).await > 0 {
        // (is an add, the row)
        let mut writes: Vec<(bool, Row)> = Vec::new();
        for job in batch.drain(..) {
            match job {
                Job::Add(row) => writes.push((true, row)),
                Job::Update(row) => writes.push((false, row)),
                other => {
                    // Reads see every write queued before them.
                    write_batch(&pool, std::mem::take(&mut writes)).await;
                    read(&pool, other).await;
                }
            }
        }
        write_batch(&pool, writes).await;
    }
}

/// Jobs taken from the queue at once.
const BATCH: usize = 512;

/// Adds and updates in one transaction; of several updates of one row
/// only the last is written (each carries the whole row).
async fn write_batch(pool: &AnyPool, writes: Vec<(bool, Row)>) {
    if writes.is_empty() {
        return;
    }
    let last_update: std::collections::HashMap<i64, usize> = writes
        .iter()
        .enumerate()
        .filter(|(_, (add, _))| !add)
        .map(|(i, (_, r))| (r.id, i))
        .collect();
    let mut tx = match pool.begin().await {
        Ok(tx) => tx,
        Err(e) => {
            tracing::error!("database: {} writes lost: {e}", writes.len());
            return;
        }
    };
    for (i, (add, row)) in writes.iter().enumerate() {
        let r = if *add {
            recordings::insert(&mut tx, row).await
        } else if last_update.get(&row.id) == Some(&i) {
            recordings::update(&mut tx, row).await
        } else {
            Ok(())
        };
        if let Err(e) = r {
            tracing::error!("database: a recording row not written: {e}");
        }
    }
    if let Err(e) = tx.commit().await {
        tracing::error!("database: {} writes lost: {e}", writes.len());
    }
}

async fn read(pool: &AnyPool, job: Job) {
    match job {
        Job::Query(q, reply) => reply(recordings::query(pool, &q).await.map_err(|e| e.to_string())),
        Job::Expire {
            node,
            group,
            max_age_us,
            max_bytes,
            reply,
        } => reply(
            recordings::expire(pool, &node, &group, max_age_us, max_bytes)
                .await
                .map_err(|e| e.to_string()),
        ),
        Job::Add(_) | Job::Update(_) => {}
    }
}
