//! Bearer tokens in the same database as the resources ([`StateStore`]).

use crate::SqlBackend;
use crate::db::{DbRow, Error, Param, Tx};
use async_trait::async_trait;
use scimd_core::BackendError;
use scimd_core::resource::{format_time, parse_time};
use scimd_core::state::{OutboxMessage, OutboxStats, StateStore, TokenRecord};
use time::OffsetDateTime;

const COLUMNS: &str = "id, source, name, hash, created, expires, revoked";

fn time_of(s: &str) -> Result<OffsetDateTime, Error> {
    parse_time(s).ok_or_else(|| {
        Error::Backend(BackendError::Internal(format!(
            "stored token timestamp {s:?} is not RFC 3339"
        )))
    })
}

fn decode(row: &DbRow) -> Result<TokenRecord, Error> {
    let opt_time = |i| -> Result<Option<OffsetDateTime>, Error> {
        row.opt_text(i)?.as_deref().map(time_of).transpose()
    };
    Ok(TokenRecord {
        id: row.text(0)?,
        source: row.text(1)?,
        name: row.text(2)?,
        hash: row.text(3)?,
        created: time_of(&row.text(4)?)?,
        expires: opt_time(5)?,
        revoked: opt_time(6)?,
    })
}

impl SqlBackend {
    async fn try_insert_token(&self, t: &TokenRecord) -> Result<(), Error> {
        let mut tx = self.write_tx().await?;
        let mut sql = self.new_sql();
        sql.push("INSERT INTO scimd_tokens (")
            .push(COLUMNS)
            .push(") VALUES (");
        sql.bind_text(t.id.as_str()).push(", ");
        sql.bind_text(t.source.as_str()).push(", ");
        sql.bind_text(t.name.as_str()).push(", ");
        sql.bind_text(t.hash.as_str()).push(", ");
        sql.bind_text(format_time(t.created)).push(", ");
        sql.bind(Param::OptText(t.expires.map(format_time)))
            .push(", ");
        sql.bind(Param::OptText(t.revoked.map(format_time)))
            .push(")");
        tx.execute(&sql).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn try_find_token(&self, hash: &str) -> Result<Option<TokenRecord>, Error> {
        let mut sql = self.new_sql();
        sql.push("SELECT ")
            .push(COLUMNS)
            .push(" FROM scimd_tokens WHERE hash = ");
        sql.bind_text(hash);
        let row = self.read_one(&sql).await?;
        row.as_ref().map(decode).transpose()
    }

    async fn try_list_tokens(&self, source: Option<&str>) -> Result<Vec<TokenRecord>, Error> {
        let mut tx = self.read_tx().await?;
        let mut sql = self.new_sql();
        sql.push("SELECT ").push(COLUMNS).push(" FROM scimd_tokens");
        if let Some(s) = source {
            sql.push(" WHERE source = ");
            sql.bind_text(s);
        }
        let rows = tx.fetch_all(&sql).await?;
        tx.commit().await?;
        let mut out = rows.iter().map(decode).collect::<Result<Vec<_>, _>>()?;
        out.sort_by(|a, b| (&a.source, a.created, &a.name).cmp(&(&b.source, b.created, &b.name)));
        Ok(out)
    }

    async fn try_revoke_token(
        &self,
        source: &str,
        name_or_id: &str,
        at: OffsetDateTime,
    ) -> Result<bool, Error> {
        let mut tx: Tx = self.write_tx().await?;
        let mut sql = self.new_sql();
        // A token revoked earlier keeps its first revocation time.
        sql.push("UPDATE scimd_tokens SET revoked = COALESCE(revoked, ");
        sql.bind_text(format_time(at));
        sql.push(") WHERE source = ");
        sql.bind_text(source);
        sql.push(" AND (name = ");
        sql.bind_text(name_or_id);
        sql.push(" OR id = ");
        sql.bind_text(name_or_id);
        sql.push(")");
        let n = tx.execute(&sql).await?;
        tx.commit().await?;
        Ok(n > 0)
    }
}

macro_rules! retry_state {
    ($unique:expr, $body:expr) => {{
        let mut attempt = 0u32;
        loop {
            match $body.await {
                Ok(v) => break Ok(v),
                Err(e) if e.is_retryable() && attempt < 30 => {
                    attempt += 1;
                    tokio::time::sleep(std::time::Duration::from_millis(1 << attempt.min(7))).await;
                }
                Err(e) => break Err(e.into_backend($unique)),
            }
        }
    }};
}

#[async_trait]
impl StateStore for SqlBackend {
    async fn insert_token(&self, token: &TokenRecord) -> Result<(), BackendError> {
        let r: Result<(), BackendError> = retry_state!("token name", self.try_insert_token(token));
        r.map_err(|e| match e {
            BackendError::Uniqueness(_) => {
                BackendError::Uniqueness(format!("token name {}", token.name))
            }
            other => other,
        })
    }

    async fn find_token(&self, hash: &str) -> Result<Option<TokenRecord>, BackendError> {
        retry_state!("token", self.try_find_token(hash))
    }

    async fn list_tokens(&self, source: Option<&str>) -> Result<Vec<TokenRecord>, BackendError> {
        retry_state!("token", self.try_list_tokens(source))
    }

    async fn revoke_token(
        &self,
        source: &str,
        name_or_id: &str,
        at: OffsetDateTime,
    ) -> Result<bool, BackendError> {
        retry_state!("token", self.try_revoke_token(source, name_or_id, at))
    }

    fn has_outbox(&self) -> bool {
        true
    }

    async fn outbox_push(&self, message: &OutboxMessage) -> Result<(), BackendError> {
        retry_state!("outbox message", self.try_outbox_push(message))
    }

    async fn outbox_claim(
        &self,
        stream: &str,
        now: OffsetDateTime,
        lease_until: OffsetDateTime,
        limit: usize,
    ) -> Result<Vec<OutboxMessage>, BackendError> {
        retry_state!(
            "outbox message",
            self.try_outbox_claim(stream, now, lease_until, limit)
        )
    }

    async fn outbox_delivered(&self, id: &str) -> Result<(), BackendError> {
        retry_state!("outbox message", self.try_outbox_delivered(id))
    }

    async fn outbox_failed(
        &self,
        id: &str,
        attempts: u32,
        retry_at: Option<OffsetDateTime>,
        error: &str,
    ) -> Result<(), BackendError> {
        retry_state!(
            "outbox message",
            self.try_outbox_failed(id, attempts, retry_at, error)
        )
    }

    async fn outbox_stats(&self, stream: &str) -> Result<OutboxStats, BackendError> {
        retry_state!("outbox message", self.try_outbox_stats(stream))
    }
}
