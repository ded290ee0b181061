//! The `scimd-bench` command.

fn main() {}
