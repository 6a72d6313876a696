//! The layout C programs compiled against `include/iommu_pt.h` rely on, checked at
//! compile time: a field added, removed or reordered by mistake fails the build instead
//! of corrupting a caller's memory (64-bit targets, as the header's tests).

use crate::types::{iommu_pt_config, iommu_pt_info, iommu_pt_sg, iommu_pt_translation};
use static_assertions::{assert_eq_align, assert_eq_size, const_assert_eq};
use std::mem::offset_of;

#[cfg(target_pointer_width = "64")]
mod layout {
    use super::*;

    assert_eq_size!(iommu_pt_sg, [u64; 2]);
    assert_eq_size!(iommu_pt_translation, [u64; 4]);
    const_assert_eq!(offset_of!(iommu_pt_translation, prot), 24);
    const_assert_eq!(offset_of!(iommu_pt_translation, level), 28);
    assert_eq_size!(iommu_pt_info, [u64; 10]);
    const_assert_eq!(offset_of!(iommu_pt_info, pgsize_bitmap), 24);
    const_assert_eq!(offset_of!(iommu_pt_info, regs), 48);
    assert_eq_size!(iommu_pt_config, [u64; 8]);
    const_assert_eq!(offset_of!(iommu_pt_config, pgsize_bitmap), 16);
    const_assert_eq!(offset_of!(iommu_pt_config, mem), 32);
    const_assert_eq!(offset_of!(iommu_pt_config, flush_ctx), 56);
    assert_eq_align!(iommu_pt_config, u64);
}
