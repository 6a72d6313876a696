//! The model-based differential battery on the test format: more than 100,000 random
//! operations per run over several configurations and both memory backends, with a
//! leak check after drop.

use pgtable_core::conformance::{differential, every_size};
use pgtable_core::testfmt::TestFormat;
use pgtable_core::{ArenaMemory, HostMemory};
use std::sync::Arc;

#[test]
fn differential_4_level_host_memory() {
    differential(TestFormat::new(), Arc::new(HostMemory::new()), 40_000, 1);
}

#[test]
fn differential_4_level_arena_memory() {
    differential(
        TestFormat::new(),
        Arc::new(ArenaMemory::new(0x1_0000_0000, 64 << 20)),
        30_000,
        2,
    );
}

#[test]
fn differential_3_level_small_output_arena() {
    differential(
        TestFormat::with(3, 36),
        Arc::new(ArenaMemory::new(0x8000_0000, 32 << 20)),
        20_000,
        3,
    );
}

#[test]
fn differential_contiguous_hint_host() {
    differential(
        TestFormat::new().with_contig(16),
        Arc::new(HostMemory::new()),
        20_000,
        4,
    );
}

#[test]
fn differential_5_level_host() {
    differential(
        TestFormat::with(5, 52),
        Arc::new(HostMemory::new()),
        10_000,
        5,
    );
}

#[test]
fn every_size_every_level() {
    every_size(TestFormat::new(), Arc::new(HostMemory::new()));
    every_size(
        TestFormat::with(3, 39),
        Arc::new(ArenaMemory::new(0x100_0000, 16 << 20)),
    );
    every_size(
        TestFormat::with(5, 52).with_contig(16),
        Arc::new(HostMemory::new()),
    );
}
