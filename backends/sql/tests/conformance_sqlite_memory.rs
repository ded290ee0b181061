//! The backend conformance suite on an in-memory SQLite database.

mod support;

use scimd_core::Backend;
use std::sync::Arc;

async fn backend() -> Arc<dyn Backend> {
    Arc::new(support::sqlite_memory().await)
}

scimd_testkit::conformance_tests!(backend);
