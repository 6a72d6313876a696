//! Core benchmarks (skeleton).
fn main() {}
