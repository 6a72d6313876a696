//! The core's every-size and concurrent stress batteries on the Arm formats: every page
//! size at every level on host and arena memory, then writers on disjoint ranges
//! against readers translating, walking and dumping, on poisoned memory.

use pgtable_core::conformance::{every_size, stress};
use pgtable_core::{ArenaMemory, Format, HostMemory};
use smmu_format::{ArmConfig, ArmS1, ArmS2};
use std::sync::Arc;
use std::time::Duration;

const STRESS: Duration = Duration::from_millis(500);

fn battery<F: Format>(fmt: F) {
    every_size(fmt.clone(), Arc::new(HostMemory::new()));
    every_size(
        fmt.clone(),
        Arc::new(ArenaMemory::new(0x4000_0000, 64 << 20)),
    );
    stress(fmt, STRESS);
}

fn s1(granule: u64, ias: u32, oas: u32) -> ArmS1 {
    ArmS1::new(ArmConfig::new(granule, ias, oas)).unwrap()
}

fn s2(granule: u64, ias: u32, oas: u32) -> ArmS2 {
    ArmS2::new(ArmConfig::new(granule, ias, oas)).unwrap()
}

#[test]
fn stage1_4k_48() {
    battery(s1(4096, 48, 48));
}

#[test]
fn stage1_16k_47() {
    battery(s1(16384, 47, 48));
}

#[test]
fn stage1_64k_52() {
    battery(s1(65536, 52, 52));
}

#[test]
fn stage2_4k_40_concatenated() {
    battery(s2(4096, 40, 48));
}

#[test]
fn stage2_64k_48() {
    battery(s2(65536, 48, 48));
}

#[test]
fn contiguous_hint() {
    let cfg = ArmConfig::new(4096, 48, 48).with_contiguous_hint(true);
    battery(ArmS1::new(cfg).unwrap());
    let cfg = ArmConfig::new(65536, 48, 48).with_contiguous_hint(true);
    battery(ArmS2::new(cfg).unwrap());
}
