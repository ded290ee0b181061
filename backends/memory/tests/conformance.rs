//! The memory backend runs the whole backend conformance suite.

use scimd_backend_memory::MemoryBackend;
use scimd_core::Backend;
use std::sync::Arc;

async fn backend() -> Arc<dyn Backend> {
    Arc::new(MemoryBackend::new(scimd_testkit::fixtures::registry()))
}

scimd_testkit::conformance_tests!(backend);
