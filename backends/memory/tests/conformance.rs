//! The memory backend runs the whole backend conformance suite.

use scimd_backend_memory::MemoryBackend;
use scimd_core::Backend;
use std::sync::Arc;

async fn backend() -> Arc<dyn Backend> {
    Arc::new(MemoryBackend::new(scimd_testkit::fixtures::registry()))
}

scimd_testkit::conformance_tests!(backend);

/// Every case also passes when all of them share one backend instance, as they do on a shared
/// database: each case's fresh source keeps it from seeing the others.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn all_cases_pass_on_one_shared_backend() {
    scimd_testkit::run_all(backend().await).await;
}
