//! The backend conformance suite on a SQLite database file (WAL, one writer, readers).

mod support;

use scimd_core::Backend;
use std::sync::Arc;

async fn backend() -> Arc<dyn Backend> {
    Arc::new(support::sqlite_file().await)
}

scimd_testkit::conformance_tests!(backend);
