//! The iommu-pt command line (skeleton).
fn main() {}
