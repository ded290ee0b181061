//! [`Backend::import`](scimd_core::Backend::import): a batch of new resources under given ids,
//! in one transaction (one commit, one fsync, however many rows).

use super::{columns, micros, search_doc};
use crate::SqlBackend;
use crate::db::Error;
use scimd_core::resource::now;
use scimd_core::{Imported, ResourceKind};

impl SqlBackend {
    pub(super) async fn try_import(
        &self,
        source: &str,
        kind: ResourceKind,
        batch: &[Imported],
    ) -> Result<(), Error> {
        let reg = self.schemas(source);
        let rt = reg.resource_type(kind);
        let at = micros(now());
        let mut tx = self.write_tx().await?;
        for item in batch {
            let (attrs, members) = Self::split(rt, item.attrs.clone())?;
            let doc = search_doc(rt, &attrs);
            let cols = columns(rt, &attrs);
            let id = match &item.id {
                Some(id) => id.clone(),
                None => uuid::Uuid::new_v4().to_string(),
            };
            self.insert_row(&mut tx, source, kind, &id, at, &attrs, &doc, &cols)
                .await?;
            if kind == ResourceKind::User && !cols.emails.is_empty() {
                self.set_emails(&mut tx, source, &id, &cols.emails, false)
                    .await?;
            }
            if !members.is_empty() {
                self.add_members(&mut tx, source, &id, &members).await?;
            }
        }
        let n = i64::try_from(batch.len()).unwrap_or(i64::MAX);
        self.count(&mut tx, source, kind, n).await?;
        tx.commit().await?;
        Ok(())
    }
}
