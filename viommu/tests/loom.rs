//! Loom models of the IOTLB's slot and invalidation protocol. Run with
//! `RUSTFLAGS="--cfg loom --cfg crossbeam_loom" CARGO_TARGET_DIR=target/loom cargo test
//! --release -p iommu-pt-viommu --test loom` (`crossbeam_loom` because pgtable-core's
//! epoch runs on loom too under `cfg(loom)`).
#![cfg(loom)]

use loom::sync::Arc;
use loom::sync::atomic::{AtomicU64, Ordering};
use loom::thread;
use viommu::Perms;
use viommu::iotlb::{Iotlb, IotlbEntry, IotlbKey};

/// Explores every interleaving with up to `preemptions` preemptions.
fn model(preemptions: usize, f: impl Fn() + Sync + Send + 'static) {
    let mut builder = loom::model::Builder::new();
    builder.preemption_bound = Some(preemptions);
    builder.check(f);
}

fn entry(pa: u64, size_shift: u8, perms: Perms) -> IotlbEntry {
    IotlbEntry {
        pa,
        size_shift,
        perms,
    }
}

fn insert(tlb: &Iotlb, key: &IotlbKey, e: IotlbEntry) -> bool {
    let ticket = tlb.begin_fill();
    tlb.insert(ticket, key, e)
}

#[test]
fn a_lookup_racing_an_insert_sees_nothing_or_a_whole_entry() {
    model(3, || {
        let tlb = Arc::new(Iotlb::new(1));
        let key = IotlbKey::new(7, Some(3), 9, 0x5000);
        let old = entry(0x1000, 12, Perms::READ);
        let new = entry(0xabc_d000, 21, Perms::RW | Perms::CLEAN);
        assert!(insert(&tlb, &key, old));
        let writer = {
            let tlb = tlb.clone();
            thread::spawn(move || insert(&tlb, &key, new))
        };
        let seen = tlb.lookup(&key);
        assert!(
            seen.is_none() || seen == Some(old) || seen == Some(new),
            "{seen:?}"
        );
        // No other thread touches the slot: the insert cannot be refused.
        assert!(writer.join().unwrap());
        assert_eq!(tlb.lookup(&key), Some(new));
    });
}

#[test]
fn a_miss_racing_an_invalidation_leaves_no_stale_entry() {
    model(3, || {
        let tlb = Arc::new(Iotlb::new(1));
        // The guest's table: the PA that IOVA 0x5000 maps to.
        let table = Arc::new(AtomicU64::new(0x1000));
        let key = IotlbKey::new(1, None, 1, 0x5000);
        let dma = {
            let (tlb, table) = (tlb.clone(), table.clone());
            thread::spawn(move || {
                // A miss: ticket, walk, insert.
                let ticket = tlb.begin_fill();
                let pa = table.load(Ordering::Acquire);
                tlb.insert(ticket, &key, entry(pa, 12, Perms::RW));
            })
        };
        // The guest remaps the page and invalidates it.
        table.store(0x2000, Ordering::Release);
        tlb.invalidate_tag_range(1, viommu::iotlb::PageRange::pages(5, 1));
        // A lookup after the invalidation returned: the new truth or a miss.
        let seen = tlb.lookup(&key).map(|e| e.pa);
        assert!(seen.is_none() || seen == Some(0x2000), "{seen:?}");
        dma.join().unwrap();
        let seen = tlb.lookup(&key).map(|e| e.pa);
        assert!(seen.is_none() || seen == Some(0x2000), "{seen:?}");
    });
}

#[test]
fn a_publish_racing_an_invalidation_of_its_entry_is_removed() {
    // The fill's ticket predates the invalidation; whichever of the fill's steps the
    // invalidation meets (before it, pending, being published, valid), the entry goes.
    model(3, || {
        let tlb = Arc::new(Iotlb::new(1));
        let key = IotlbKey::new(1, Some(2), 3, 0x7000);
        let ticket = tlb.begin_fill();
        let dma = {
            let tlb = tlb.clone();
            thread::spawn(move || tlb.insert(ticket, &key, entry(0x1000, 12, Perms::READ)))
        };
        tlb.invalidate_source_pasid(1, 2);
        assert_eq!(tlb.lookup(&key), None);
        dma.join().unwrap();
        assert_eq!(tlb.lookup(&key), None);
    });
}

#[test]
fn two_inserters_into_one_slot_never_tear() {
    // Three threads: two preemptions keep it to seconds.
    model(2, || {
        let tlb = Arc::new(Iotlb::new(1));
        let (ka, kb) = (
            IotlbKey::new(1, None, 1, 0x1000),
            IotlbKey::new(2, Some(9), 2, 0x2000),
        );
        let (ea, eb) = (entry(0xa000, 12, Perms::READ), entry(0xb000, 30, Perms::RW));
        let a = {
            let tlb = tlb.clone();
            thread::spawn(move || insert(&tlb, &ka, ea))
        };
        let b = {
            let tlb = tlb.clone();
            thread::spawn(move || insert(&tlb, &kb, eb))
        };
        let seen = tlb.lookup(&kb);
        assert!(seen.is_none() || seen == Some(eb), "{seen:?}");
        let (ia, ib) = (a.join().unwrap(), b.join().unwrap());
        // At least one of them got the slot; what it holds is whole and one of theirs.
        assert!(ia || ib);
        let (sa, sb) = (tlb.lookup(&ka), tlb.lookup(&kb));
        assert!(sa.is_none() || sa == Some(ea), "{sa:?}");
        assert!(sb.is_none() || sb == Some(eb), "{sb:?}");
        assert!(sa.is_some() != sb.is_some());
        assert_eq!(tlb.len(), 1);
    });
}
