//! The core's differential battery on the Arm formats: long random operation sequences
//! against a model, with table-page accounting and a leak check, on host and arena
//! memory.
//!
//! One test function on purpose: the battery compares the table's live-page count with
//! the memory's after every few hundred operations, and crossbeam-epoch lets any thread
//! of the process run a deferred free, so another test running in parallel in this
//! binary could be in the middle of freeing one of this table's pages at that moment.

use pgtable_core::conformance::differential;
use pgtable_core::{ArenaMemory, Format, HostMemory};
use smmu_format::{ArmConfig, ArmS1, ArmS2};
use std::sync::Arc;

const OPS: usize = 20_000;

fn arena() -> Arc<ArenaMemory> {
    Arc::new(ArenaMemory::new(0x4000_0000, 64 << 20))
}

fn both_memories<F: Format>(fmt: F, seed: u64) {
    differential(fmt.clone(), Arc::new(HostMemory::new()), OPS, seed);
    differential(fmt, arena(), OPS, seed + 1);
}

#[test]
fn differential_against_the_model() {
    let cfg = ArmConfig::new;
    both_memories(ArmS1::new(cfg(4096, 48, 48)).unwrap(), 10);
    both_memories(ArmS1::new(cfg(16384, 47, 48)).unwrap(), 20);
    both_memories(ArmS1::new(cfg(65536, 52, 52)).unwrap(), 30);
    let s2 = ArmS2::new(cfg(4096, 40, 48)).unwrap();
    assert_eq!(s2.shape().concatenated_tables(), 2);
    both_memories(s2, 40);
    both_memories(ArmS2::new(cfg(65536, 48, 48)).unwrap(), 50);
    // The contiguous hint changes only the encoding, never what the table maps.
    let hinted = |g, ias, oas| cfg(g, ias, oas).with_contiguous_hint(true);
    both_memories(ArmS1::new(hinted(4096, 48, 48)).unwrap(), 60);
    both_memories(ArmS2::new(hinted(16384, 48, 48)).unwrap(), 70);
}
