//! The durable outbox of the state store ([`StateStore::outbox_push`] and friends) in the same
//! database as the resources, so every replica delivers from one queue.
//!
//! Claiming leases rows by moving `next_attempt` forward inside a write transaction: SQLite
//! serializes writers, and PostgreSQL skips rows another replica has locked
//! (`FOR UPDATE SKIP LOCKED`), so two replicas never claim the same message at once.
//!
//! When this database is the live state store ([`SqlBackend::set_transactional_outbox`]),
//! writes watched by outbox hooks insert their messages here in the write's own transaction
//! ([`Backend::create_staged`] and the other `*_staged` methods): a resource and the events
//! about it commit together, so no crash can keep one without the other. Until that
//! transaction commits, the rows are invisible to claims.
//!
//! [`StateStore::outbox_push`]: scimd_core::state::StateStore::outbox_push
//! [`Backend::create_staged`]: scimd_core::Backend::create_staged

use crate::SqlBackend;
use crate::db::{DbRow, Dialect, Error, Param, Sql, Tx};
use scimd_core::backend::Stager;
use scimd_core::state::{OutboxMessage, OutboxStats};
use scimd_core::{BackendError, Resource};
use std::sync::atomic::Ordering;
use time::OffsetDateTime;

const COLUMNS: &str = "id, stream, payload, created, attempts, next_attempt, last_error";

fn micros(t: OffsetDateTime) -> i64 {
    i64::try_from(t.unix_timestamp_nanos() / 1000).unwrap_or(i64::MAX)
}

fn time_of(us: i64) -> Result<OffsetDateTime, Error> {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(us) * 1000).map_err(|e| {
        Error::Backend(BackendError::Internal(format!(
            "stored outbox time {us} is out of range: {e}"
        )))
    })
}

fn decode(row: &DbRow) -> Result<OutboxMessage, Error> {
    Ok(OutboxMessage {
        id: row.text(0)?,
        stream: row.text(1)?,
        payload: row.text(2)?,
        created: time_of(row.int(3)?)?,
        attempts: u32::try_from(row.int(4)?).unwrap_or(u32::MAX),
        next_attempt: time_of(row.int(5)?)?,
        last_error: row.opt_text(6)?,
    })
}

impl SqlBackend {
    /// Makes writes watched by outbox hooks (the `*_staged` methods of [`scimd_core::Backend`])
    /// store their messages in their own transaction. Turn it on only when this database is
    /// also the live state store, whose delivery workers read the outbox: the server does so
    /// when they share the database. Off (the default), staged writes hand their messages back
    /// for the caller to store after the write.
    pub fn set_transactional_outbox(&self, on: bool) {
        self.inner.transactional_outbox.store(on, Ordering::Relaxed);
    }

    /// Whether writes store their outbox messages in their own transaction.
    pub fn transactional_outbox(&self) -> bool {
        self.inner.transactional_outbox.load(Ordering::Relaxed)
    }

    fn insert_message(&self, m: &OutboxMessage) -> Sql {
        let mut sql = self.new_sql();
        sql.push("INSERT INTO scimd_outbox (")
            .push(COLUMNS)
            .push(") VALUES (");
        sql.bind_text(m.id.as_str()).push(", ");
        sql.bind_text(m.stream.as_str()).push(", ");
        sql.bind_text(m.payload.as_str()).push(", ");
        sql.bind_int(micros(m.created)).push(", ");
        sql.bind_int(i64::from(m.attempts)).push(", ");
        sql.bind_int(micros(m.next_attempt)).push(", ");
        sql.bind(Param::OptText(m.last_error.clone())).push(")");
        sql
    }

    pub(crate) async fn try_outbox_push(&self, m: &OutboxMessage) -> Result<(), Error> {
        let mut tx = self.write_tx().await?;
        let mut sql = self.insert_message(m);
        // Pushing again after a lost acknowledgement must not fail.
        sql.push(" ON CONFLICT (id) DO NOTHING");
        tx.execute(&sql).await?;
        tx.commit().await?;
        Ok(())
    }

    /// The outbox phase of a write, inside its transaction: builds the messages of the new
    /// state and inserts them. Each message is new (a fresh id per attempt); an id that is
    /// stored already means a broken id generator and fails the write rather than losing the
    /// event.
    pub(crate) async fn stage_in(
        &self,
        tx: &mut Tx,
        stager: &dyn Stager,
        new: Option<&Resource>,
    ) -> Result<(), Error> {
        for m in stager.stage(new) {
            match tx.execute(&self.insert_message(&m)).await {
                Err(Error::Db(sqlx::Error::Database(d))) if d.is_unique_violation() => {
                    return Err(BackendError::Internal(format!(
                        "the outbox already holds a message with id {}",
                        m.id
                    ))
                    .into());
                }
                r => {
                    r?;
                }
            }
        }
        Ok(())
    }

    pub(crate) async fn try_outbox_claim(
        &self,
        stream: &str,
        now: OffsetDateTime,
        lease_until: OffsetDateTime,
        limit: usize,
    ) -> Result<Vec<OutboxMessage>, Error> {
        // Workers poll every stream about once a second; an idle poll must not take SQLite's
        // single write lock, so a read looks for due messages first.
        let mut probe = self.new_sql();
        probe.push("SELECT id FROM scimd_outbox WHERE stream = ");
        probe
            .bind_text(stream)
            .push(" AND failed = 0 AND next_attempt <= ");
        probe.bind_int(micros(now)).push(" LIMIT 1");
        let mut read = self.read_tx().await?;
        let due = read.fetch_optional(&probe).await?;
        read.commit().await?;
        if due.is_none() {
            return Ok(Vec::new());
        }
        let mut tx = self.write_tx().await?;
        let mut sql = self.new_sql();
        sql.push("SELECT ")
            .push(COLUMNS)
            .push(" FROM scimd_outbox WHERE stream = ");
        sql.bind_text(stream)
            .push(" AND failed = 0 AND next_attempt <= ");
        sql.bind_int(micros(now))
            .push(" ORDER BY created, id LIMIT ");
        sql.bind_int(i64::try_from(limit).unwrap_or(i64::MAX));
        if self.dialect_of() == Dialect::Postgres {
            sql.push(" FOR UPDATE SKIP LOCKED");
        }
        let rows = tx.fetch_all(&sql).await?;
        let mut out = rows.iter().map(decode).collect::<Result<Vec<_>, _>>()?;
        if !out.is_empty() {
            let mut sql = self.new_sql();
            sql.push("UPDATE scimd_outbox SET next_attempt = ");
            sql.bind_int(micros(lease_until)).push(" WHERE id IN ");
            sql.bind_text_list(out.iter().map(|m| m.id.as_str()));
            tx.execute(&sql).await?;
        }
        tx.commit().await?;
        for m in &mut out {
            m.next_attempt = lease_until;
        }
        Ok(out)
    }

    pub(crate) async fn try_outbox_delivered(&self, id: &str) -> Result<(), Error> {
        let mut tx = self.write_tx().await?;
        let mut sql = self.new_sql();
        sql.push("DELETE FROM scimd_outbox WHERE id = ");
        sql.bind_text(id);
        tx.execute(&sql).await?;
        tx.commit().await?;
        Ok(())
    }

    pub(crate) async fn try_outbox_failed(
        &self,
        id: &str,
        attempts: u32,
        retry_at: Option<OffsetDateTime>,
        error: &str,
    ) -> Result<(), Error> {
        let mut tx = self.write_tx().await?;
        let mut sql = self.new_sql();
        sql.push("UPDATE scimd_outbox SET attempts = ");
        sql.bind_int(i64::from(attempts)).push(", last_error = ");
        sql.bind_text(error);
        match retry_at {
            Some(t) => {
                sql.push(", next_attempt = ");
                sql.bind_int(micros(t));
            }
            None => {
                sql.push(", failed = 1");
            }
        }
        sql.push(" WHERE id = ");
        sql.bind_text(id);
        tx.execute(&sql).await?;
        tx.commit().await?;
        Ok(())
    }

    pub(crate) async fn try_outbox_stats(&self, stream: &str) -> Result<OutboxStats, Error> {
        let mut tx = self.read_tx().await?;
        let mut sql = self.new_sql();
        sql.push("SELECT failed, COUNT(*) FROM scimd_outbox WHERE stream = ");
        sql.bind_text(stream).push(" GROUP BY failed");
        let rows = tx.fetch_all(&sql).await?;
        tx.commit().await?;
        let mut stats = OutboxStats::default();
        for row in &rows {
            let n = u64::try_from(row.int(1)?).unwrap_or(0);
            if row.int(0)? == 0 {
                stats.pending = n;
            } else {
                stats.failed = n;
            }
        }
        Ok(stats)
    }
}
