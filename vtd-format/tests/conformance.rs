//! The core's batteries for every VT-d configuration the C API names: SS 39/48/57
//! and FS 48/57, on host memory (phys == virt) and on an arena (phys != virt).

use pgtable_core::conformance::{differential, every_size, stress};
use pgtable_core::{ArenaMemory, Format, HostMemory};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use vtd_format::{SZ_1G, SZ_4K, VtdFs, VtdSs};

const OPS: usize = 20_000;

/// Runs the batteries one at a time. The differential compares the table's page count
/// with the memory's between operations; a deferred free that another test's thread
/// runs from the shared epoch collector can fall between the two reads (the core frees
/// the page, then decrements its count), so nothing else may run meanwhile.
fn one_at_a_time() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

fn arena() -> Arc<ArenaMemory> {
    Arc::new(ArenaMemory::new(0x1_0000_0000, 64 << 20))
}

fn ss(ias: u32, oas: u32) -> VtdSs {
    VtdSs::new(ias, oas).unwrap()
}

fn fs(ias: u32, oas: u32) -> VtdFs {
    VtdFs::new(ias, oas).unwrap()
}

fn battery<F: Format>(f: F, seed: u64) {
    let _serial = one_at_a_time();
    differential(f.clone(), Arc::new(HostMemory::new()), OPS, seed);
    differential(f.clone(), arena(), OPS, seed + 1);
    every_size(f.clone(), Arc::new(HostMemory::new()));
    every_size(f, arena());
}

#[test]
fn ss_39() {
    // oas 39 is below host virtual addresses: table pointers are not held to it.
    battery(ss(39, 39), 39);
}

#[test]
fn ss_48() {
    battery(ss(48, 48), 48);
}

#[test]
fn ss_57() {
    battery(ss(57, 52), 57);
}

#[test]
fn ss_odd_input_sizes() {
    battery(ss(31, 40), 31);
    battery(ss(44, 46), 44);
}

#[test]
fn ss_restricted_page_sizes() {
    battery(ss(48, 48).with_large_pages(true, false), 1);
    battery(ss(48, 48).with_pgsize_bitmap(SZ_4K | SZ_1G).unwrap(), 2);
    battery(ss(39, 48).with_pgsize_bitmap(SZ_4K).unwrap(), 3);
}

#[test]
fn fs_48() {
    battery(fs(48, 46), 148);
}

#[test]
fn fs_57() {
    battery(fs(57, 52), 157);
}

#[test]
fn fs_without_1g() {
    battery(fs(48, 48).with_1g_pages(false), 4);
}

#[test]
fn stress_every_configuration() {
    let _serial = one_at_a_time();
    let t = Duration::from_millis(500);
    stress(ss(39, 39), t);
    stress(ss(48, 48), t);
    stress(ss(57, 52), t);
    stress(fs(48, 48), t);
    stress(fs(57, 52), t);
}
