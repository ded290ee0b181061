//! The `scimd` binary. (Being written.)
fn main() {}
