//! The shared store: a PostgreSQL database that several `sluice serve` instances use at once
//! (`--store postgres://...` or `[store]` in the configuration), through [sqlx](https://docs.rs/sqlx).
//!
//! - The schema is created and migrated at start by sqlx's migrator, which holds a PostgreSQL
//!   advisory lock while it runs, so instances starting together apply each migration once.
//! - Conditional writes are single statements (`INSERT ... ON CONFLICT DO NOTHING`, `UPDATE ...
//!   WHERE version = $read`), each with its `pg_notify` in the same statement, so the notice is sent
//!   exactly when the write commits.
//! - A listener connection (`LISTEN sluice_pipes`) turns notices into [`StoreEvent`]s; when its
//!   connection is lost it reconnects by itself and announces [`StoreEvent::Resync`].
//! - Liveness is judged by the database's clock (`heartbeat_at > now() - live`), so instances'
//!   clocks need not agree.
//! - A lost database fails calls fast ([`StoreError::Unavailable`] after the acquire timeout); the
//!   pool opens new connections once it is back.

use std::borrow::Cow;
use std::str::FromStr;
use std::time::Duration;

use serde::Deserialize;
use sqlx::migrate::{Migration, MigrationType, Migrator};
use sqlx::postgres::{PgConnectOptions, PgListener, PgPool, PgPoolOptions};
use sqlx::{Row, SqlSafeStr};
use tokio::sync::broadcast;
use tokio::task::JoinHandle;

use super::{
    decode, encode, Observation, Observed, PipeRecord, PipeStore, StoreError, StoreEvent,
    EVENT_CAPACITY,
};
use crate::secrets::{SecretRef, SecretResolver};

/// The channel writes are announced on; the payload is the pipe's name.
const CHANNEL: &str = "sluice_pipes";

/// The table sqlx records applied migrations in (ours, so it cannot clash with an application
/// sharing the database).
const MIGRATIONS_TABLE: &str = "sluice_migrations";

/// The schema's versions, in order. A released migration is never edited: sqlx checks each
/// applied one's checksum.
const MIGRATIONS: &[(i64, &str, &str)] = &[(1, "pipes", include_str!("migrations/0001_pipes.sql"))];

/// `[store]` of the `sluice serve` configuration: the PostgreSQL database instances share.
///
/// ```toml
/// [store]
/// url = "postgres://sluice@db.example:5432/sluice?sslmode=require"
/// password = "env:SLUICE_DB_PASSWORD"   # or file:///run/secrets/db, or a Secrets Manager ARN
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PostgresConfig {
    /// `postgres://USER@HOST[:PORT]/DATABASE[?sslmode=...]`, without a password (`--store`
    /// replaces it). Absent: the embedded store under `--data`.
    #[serde(default)]
    pub url: Option<String>,
    /// Secret reference (`env:NAME`, `file:///path`, a Secrets Manager ARN) of the password.
    #[serde(default)]
    pub password: Option<String>,
    /// Most connections one instance opens for queries (default 8), plus one that listens.
    #[serde(default)]
    pub max_connections: Option<u32>,
    /// How long a call waits for a connection before it fails, in milliseconds (default 3000):
    /// how fast the API answers `InternalException` when the database is gone.
    #[serde(default)]
    pub acquire_timeout_ms: Option<u64>,
}

/// A validated [`PostgresConfig`].
#[derive(Debug, Clone)]
pub struct PostgresSettings {
    options: PgConnectOptions,
    /// The URL as given (it holds no password), for logs.
    pub url: String,
    password: Option<SecretRef>,
    max_connections: u32,
    acquire_timeout: Duration,
}

impl PostgresConfig {
    /// Check the values; `Ok(None)` when no URL is given. Errors name the field.
    pub fn validate(&self) -> Result<Option<PostgresSettings>, String> {
        let Some(url) = &self.url else {
            if self.password.is_some() {
                return Err("store.password needs store.url".into());
            }
            return Ok(None);
        };
        let parsed =
            url::Url::parse(url).map_err(|e| format!("store.url is not a valid URL: {e}"))?;
        if !matches!(parsed.scheme(), "postgres" | "postgresql") {
            return Err("store.url must start with postgres://".into());
        }
        if parsed.password().is_some() {
            return Err(
                "store.url must not contain a password: give it as a secret reference in \
                 store.password"
                    .into(),
            );
        }
        let options = PgConnectOptions::from_str(url)
            .map_err(|e| format!("store.url: {e}"))?
            .application_name("sluice");
        let password = self
            .password
            .as_deref()
            .map(|p| SecretRef::parse(p).map_err(|e| format!("store.password: {e}")))
            .transpose()?;
        let max_connections = self.max_connections.unwrap_or(8);
        if !(1..=100).contains(&max_connections) {
            return Err("store.max_connections must be between 1 and 100".into());
        }
        let acquire_timeout = Duration::from_millis(self.acquire_timeout_ms.unwrap_or(3000));
        if acquire_timeout.is_zero() {
            return Err("store.acquire_timeout_ms must be positive".into());
        }
        Ok(Some(PostgresSettings {
            options,
            url: url.clone(),
            password,
            max_connections,
            acquire_timeout,
        }))
    }
}

/// Pipes in PostgreSQL.
#[derive(Debug)]
pub struct PostgresStore {
    pool: PgPool,
    events: broadcast::Sender<StoreEvent>,
    listener: JoinHandle<()>,
}

impl Drop for PostgresStore {
    fn drop(&mut self) {
        self.listener.abort();
    }
}

fn pg_err(e: sqlx::Error) -> StoreError {
    use sqlx::Error as E;
    match &e {
        E::Io(_) | E::Tls(_) | E::PoolTimedOut | E::PoolClosed | E::WorkerCrashed => {
            StoreError::Unavailable(e.to_string())
        }
        E::Database(db)
            if db
                .code()
                .is_some_and(|c| c.starts_with("08") || c.starts_with("57P")) =>
        {
            // Connection exceptions; the server shutting down or starting up.
            StoreError::Unavailable(e.to_string())
        }
        _ => StoreError::Database(e.to_string()),
    }
}

fn version_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

fn secs(d: Duration) -> f64 {
    d.as_secs_f64()
}

impl PostgresStore {
    /// Connect (resolving the password), migrate the schema, and start listening for writes.
    pub async fn connect(settings: &PostgresSettings) -> Result<PostgresStore, StoreError> {
        let mut options = settings.options.clone();
        if let Some(reference) = &settings.password {
            let secret = SecretResolver::new()
                .fetch(reference)
                .await
                .map_err(|e| StoreError::Database(format!("store.password: {e}")))?;
            options = options.password(secret.expose());
        }
        let pool = PgPoolOptions::new()
            // One more for the listener, which holds its connection.
            .max_connections(settings.max_connections + 1)
            .acquire_timeout(settings.acquire_timeout)
            .connect_with(options)
            .await
            .map_err(pg_err)?;
        migrator()
            .run(&pool)
            .await
            .map_err(|e| StoreError::Database(format!("cannot migrate the schema: {e}")))?;
        let listener = subscribe(&pool).await.map_err(pg_err)?;
        let events = broadcast::channel(EVENT_CAPACITY).0;
        let listener = tokio::spawn(listen(pool.clone(), listener, events.clone()));
        Ok(PostgresStore {
            pool,
            events,
            listener,
        })
    }

    /// Run a write of `record` (`$1` name, `$2` version, `$3` desired state, `$4` the record).
    async fn write_record(
        &self,
        sql: &'static str,
        record: &PipeRecord,
    ) -> Result<bool, StoreError> {
        let json = String::from_utf8(encode(record)?).unwrap_or_default();
        self.written(
            sqlx::query(sql)
                .bind(&record.name)
                .bind(version_i64(record.version))
                .bind(record.desired_state.as_str())
                .bind(json),
        )
        .await
    }

    /// Announce-and-write statements return one row per written record.
    async fn written(
        &self,
        query: sqlx::query::Query<'_, sqlx::Postgres, sqlx::postgres::PgArguments>,
    ) -> Result<bool, StoreError> {
        Ok(!query
            .fetch_all(&self.pool)
            .await
            .map_err(pg_err)?
            .is_empty())
    }
}

fn migrator() -> Migrator {
    let migrations = MIGRATIONS
        .iter()
        .map(|(version, description, sql)| {
            Migration::new(
                *version,
                Cow::Borrowed(*description),
                MigrationType::Simple,
                sql.into_sql_str(),
                false,
            )
        })
        .collect();
    let mut migrator = Migrator::with_migrations(migrations);
    migrator.dangerous_set_table_name(MIGRATIONS_TABLE);
    migrator
}

/// A listener on [`CHANNEL`].
async fn subscribe(pool: &PgPool) -> Result<PgListener, sqlx::Error> {
    let mut listener = PgListener::connect_with(pool).await?;
    listener.listen(CHANNEL).await?;
    Ok(listener)
}

/// Forward notices until the store is dropped. sqlx reconnects a listener by itself only for
/// some ways of losing the connection, so after any error the listener is replaced; every new
/// connection asks for a resync, since notices sent meanwhile are lost.
async fn listen(pool: PgPool, first: PgListener, events: broadcast::Sender<StoreEvent>) {
    let mut listener = Some(first);
    let mut failing = false;
    loop {
        let mut l = match listener.take() {
            Some(l) => l,
            None => match subscribe(&pool).await {
                Ok(l) => {
                    tracing::info!("pipe store notifications are back");
                    failing = false;
                    let _ = events.send(StoreEvent::Resync);
                    l
                }
                Err(e) => {
                    if !std::mem::replace(&mut failing, true) {
                        tracing::warn!(error = %e, "pipe store notifications lost; reconnecting");
                    }
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    continue;
                }
            },
        };
        loop {
            match l.try_recv().await {
                Ok(Some(n)) => {
                    let _ = events.send(StoreEvent::Changed(n.payload().to_string()));
                }
                // The connection was lost and sqlx made a new one.
                Ok(None) => {
                    let _ = events.send(StoreEvent::Resync);
                }
                Err(e) => {
                    if !std::mem::replace(&mut failing, true) {
                        tracing::warn!(error = %e, "pipe store notifications lost; reconnecting");
                    }
                    break;
                }
            }
        }
    }
}

#[async_trait::async_trait]
impl PipeStore for PostgresStore {
    async fn list(&self) -> Result<Vec<PipeRecord>, StoreError> {
        let rows = sqlx::query("SELECT name, record::text FROM sluice_pipes ORDER BY name")
            .fetch_all(&self.pool)
            .await
            .map_err(pg_err)?;
        rows.iter()
            .map(|r| decode(r.get::<&str, _>(0), r.get::<&str, _>(1).as_bytes()))
            .collect()
    }

    async fn get(&self, name: &str) -> Result<Option<PipeRecord>, StoreError> {
        let row = sqlx::query("SELECT record::text FROM sluice_pipes WHERE name = $1")
            .bind(name)
            .fetch_optional(&self.pool)
            .await
            .map_err(pg_err)?;
        row.map(|r| decode(name, r.get::<&str, _>(0).as_bytes()))
            .transpose()
    }

    async fn insert(&self, record: &PipeRecord) -> Result<bool, StoreError> {
        self.write_record(
            "WITH w AS (INSERT INTO sluice_pipes (name, version, desired_state, record) \
             VALUES ($1, $2, $3, $4::jsonb) ON CONFLICT (name) DO NOTHING RETURNING name) \
             SELECT pg_notify('sluice_pipes', name) FROM w",
            record,
        )
        .await
    }

    async fn replace(&self, record: &PipeRecord) -> Result<bool, StoreError> {
        self.write_record(
            "WITH w AS (UPDATE sluice_pipes SET version = $2, desired_state = $3, \
             record = $4::jsonb WHERE name = $1 AND version = $2 - 1 RETURNING name) \
             SELECT pg_notify('sluice_pipes', name) FROM w",
            record,
        )
        .await
    }

    async fn remove(&self, name: &str, live: Duration) -> Result<bool, StoreError> {
        self.written(
            sqlx::query(
                "WITH w AS (DELETE FROM sluice_pipes p WHERE p.name = $1 \
                 AND p.desired_state = 'DELETED' AND NOT EXISTS ( \
                   SELECT 1 FROM sluice_observations o JOIN sluice_instances i ON i.id = o.instance \
                   WHERE o.pipe = p.name AND o.phase IN ('STARTING', 'RUNNING') \
                   AND i.heartbeat_at > now() - make_interval(secs => $2)) \
                 RETURNING name) \
                 SELECT pg_notify('sluice_pipes', name) FROM w",
            )
            .bind(name)
            .bind(secs(live)),
        )
        .await
    }

    async fn heartbeat(&self, instance: &str) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO sluice_instances (id, heartbeat_at) VALUES ($1, now()) \
             ON CONFLICT (id) DO UPDATE SET heartbeat_at = now()",
        )
        .bind(instance)
        .execute(&self.pool)
        .await
        .map_err(pg_err)?;
        Ok(())
    }

    async fn observe(&self, o: &Observation) -> Result<(), StoreError> {
        let json = serde_json::to_string(o).map_err(|e| StoreError::Corrupt {
            name: o.pipe.clone(),
            message: e.to_string(),
        })?;
        let result = sqlx::query(
            "INSERT INTO sluice_observations (pipe, instance, version, phase, observation) \
             SELECT $1, $2, $3, $4, $5::jsonb \
             WHERE EXISTS (SELECT 1 FROM sluice_pipes WHERE name = $1) \
             AND EXISTS (SELECT 1 FROM sluice_instances WHERE id = $2) \
             ON CONFLICT (pipe, instance) DO UPDATE SET version = EXCLUDED.version, \
             phase = EXCLUDED.phase, observation = EXCLUDED.observation, observed_at = now()",
        )
        .bind(&o.pipe)
        .bind(&o.instance)
        .bind(version_i64(o.version))
        .bind(o.phase.as_str())
        .bind(json)
        .execute(&self.pool)
        .await;
        match result {
            Ok(_) => Ok(()),
            // The pipe (or the instance) was removed meanwhile: nothing to observe.
            Err(sqlx::Error::Database(e))
                if e.kind() == sqlx::error::ErrorKind::ForeignKeyViolation =>
            {
                Ok(())
            }
            Err(e) => Err(pg_err(e)),
        }
    }

    async fn observed(&self, pipe: Option<&str>, live: Duration) -> Result<Observed, StoreError> {
        let rows = sqlx::query(
            "SELECT i.id, o.observation::text, \
             EXTRACT(EPOCH FROM now() - i.heartbeat_at)::float8 FROM sluice_instances i \
             LEFT JOIN sluice_observations o ON o.instance = i.id \
             AND ($1::text IS NULL OR o.pipe = $1) \
             WHERE i.heartbeat_at > now() - make_interval(secs => $2)",
        )
        .bind(pipe)
        .bind(secs(live))
        .fetch_all(&self.pool)
        .await
        .map_err(pg_err)?;
        let mut out = Observed::default();
        for row in rows {
            let id = row.get::<String, _>(0);
            // By the database's clock, so never negative in principle; clamped all the same.
            let age = Duration::from_secs_f64(row.get::<f64, _>(2).max(0.0));
            out.live.insert(id, age);
            if let Some(text) = row.get::<Option<&str>, _>(1) {
                let o: Observation =
                    serde_json::from_str(text).map_err(|e| StoreError::Corrupt {
                        name: pipe.unwrap_or_default().to_string(),
                        message: format!("observation: {e}"),
                    })?;
                out.observations.push(o);
            }
        }
        Ok(out)
    }

    async fn leave(&self, instance: &str) -> Result<(), StoreError> {
        // Observations go with the instance (ON DELETE CASCADE).
        sqlx::query("DELETE FROM sluice_instances WHERE id = $1")
            .bind(instance)
            .execute(&self.pool)
            .await
            .map_err(pg_err)?;
        Ok(())
    }

    fn events(&self) -> broadcast::Receiver<StoreEvent> {
        self.events.subscribe()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(url: &str) -> PostgresConfig {
        PostgresConfig {
            url: Some(url.into()),
            ..PostgresConfig::default()
        }
    }

    #[test]
    fn settings_name_the_field_that_is_wrong() {
        assert!(PostgresConfig::default().validate().unwrap().is_none());
        let ok = config("postgres://sluice@db:5433/pipes")
            .validate()
            .unwrap()
            .unwrap();
        assert_eq!(ok.options.get_port(), 5433);
        assert_eq!(ok.options.get_database(), Some("pipes"));
        for (c, field) in [
            (
                config("postgres://sluice:hunter2@db/pipes"),
                "store.url must not contain a password",
            ),
            (
                config("mysql://db/pipes"),
                "store.url must start with postgres://",
            ),
            (config("not a url"), "store.url is not a valid URL"),
            (
                PostgresConfig {
                    password: Some("plain-text".into()),
                    ..config("postgres://db/pipes")
                },
                "store.password",
            ),
            (
                PostgresConfig {
                    password: Some("env:X".into()),
                    url: None,
                    ..PostgresConfig::default()
                },
                "store.password needs store.url",
            ),
            (
                PostgresConfig {
                    max_connections: Some(0),
                    ..config("postgres://db/pipes")
                },
                "store.max_connections",
            ),
        ] {
            let err = c.validate().unwrap_err();
            assert!(err.contains(field), "{err}");
            assert!(!err.contains("hunter2"), "{err}");
        }
    }

    /// A throwaway server from `scripts/postgres`, stopped on drop.
    struct Server {
        name: String,
        url: String,
        password_file: String,
    }

    fn script() -> std::path::PathBuf {
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/postgres")
    }

    impl Server {
        fn start(prefix: &str) -> Server {
            let name = format!("{prefix}-{}", std::process::id());
            let out = std::process::Command::new(script())
                .args(["start", "--no-fsync", "--name", &name])
                .stderr(std::process::Stdio::inherit())
                .output()
                .expect("run scripts/postgres");
            assert!(out.status.success(), "scripts/postgres start failed");
            let text = String::from_utf8_lossy(&out.stdout).into_owned();
            let get = |k: &str| {
                text.lines()
                    .find_map(|l| l.strip_prefix(&format!("{k}=")).map(str::to_string))
                    .unwrap()
            };
            Server {
                url: get("URL"),
                password_file: get("PASSWORD_FILE"),
                name,
            }
        }

        fn ctl(&self, what: &str) {
            let ok = std::process::Command::new(script())
                .args([what, "--name", &self.name])
                .status()
                .unwrap()
                .success();
            assert!(ok, "scripts/postgres {what} failed");
        }
    }

    impl Drop for Server {
        fn drop(&mut self) {
            self.ctl("stop");
        }
    }

    async fn next(events: &mut broadcast::Receiver<StoreEvent>) -> StoreEvent {
        tokio::time::timeout(Duration::from_secs(30), events.recv())
            .await
            .expect("no announcement after the server came back")
            .unwrap()
    }

    async fn clear(store: &PostgresStore) {
        sqlx::query("TRUNCATE sluice_pipes, sluice_instances CASCADE")
            .execute(&store.pool)
            .await
            .unwrap();
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn postgres_store_keeps_the_contract_and_survives_a_lost_server() {
        let server = Server::start("store-contract");
        let settings = PostgresConfig {
            url: Some(server.url.clone()),
            password: Some(format!("file://{}", server.password_file)),
            acquire_timeout_ms: Some(1000),
            ..PostgresConfig::default()
        }
        .validate()
        .unwrap()
        .unwrap();
        // Two instances starting at once: the migration runs once, neither fails.
        let (a, b) = tokio::join!(
            PostgresStore::connect(&settings),
            PostgresStore::connect(&settings)
        );
        let (a, b) = (a.unwrap(), b.unwrap());
        let mut b_events = b.events();
        super::super::contract::records(&a).await;
        assert_eq!(
            b_events.recv().await.unwrap(),
            StoreEvent::Changed("b".into()),
            "another instance hears of the write"
        );
        clear(&a).await;
        super::super::contract::observations(&a).await;
        clear(&a).await;

        // The server goes away: calls fail as unavailable, then work again by themselves.
        server.ctl("pause");
        let err = a.list().await.unwrap_err();
        assert!(matches!(err, StoreError::Unavailable(_)), "{err}");
        assert!(err.is_retryable());
        let mut events = a.events();
        server.ctl("resume");
        let mut back = false;
        for _ in 0..100 {
            if a.insert(&super::super::sample("after")).await.is_ok() {
                back = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert!(back, "the store never came back");
        // The listener reconnects by itself (notices sent meanwhile are lost, so it asks for a
        // resync) and hears writes again.
        while next(&mut events).await != StoreEvent::Resync {}
        a.insert(&super::super::sample("later")).await.unwrap();
        while next(&mut events).await != StoreEvent::Changed("later".into()) {}
    }

    #[test]
    fn migrations_are_numbered_in_order() {
        let m = migrator();
        let versions: Vec<i64> = m.iter().map(|m| m.version).collect();
        assert_eq!(versions, (1..=MIGRATIONS.len() as i64).collect::<Vec<_>>());
    }
}
