//! The backend conformance suite on PostgreSQL, in a database of its own (see `support`).
//! Without a PostgreSQL server each case says it was skipped; under `CI=true` it fails.

mod support;

use scimd_core::Backend;
use std::sync::Arc;

async fn backend() -> Option<Arc<dyn Backend>> {
    Some(Arc::new(support::postgres().await?))
}

scimd_testkit::conformance_tests!(optional backend);
