//! C API of iommu-pt (skeleton; filled by its own issue).
