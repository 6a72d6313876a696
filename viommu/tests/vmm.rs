//! `IommuBridge` under vm-memory's `IommuMemory` over `GuestMemoryMmap`: DMA lands at
//! the translated addresses, faults are errors, the bridge's cache follows the unit's
//! invalidations (whole leaves, dirty tracking), and an invalidation waits for DMA in
//! flight without deadlocking nested accesses.
#![cfg(feature = "vm-memory")]

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Barrier, RwLock};
use viommu::vmm::IommuBridge;
use viommu::{Access, DeviceTlb, DeviceTranslate, Mapping, Perms, TranslateFault};
use vm_memory::{Bytes, GuestAddress, GuestMemory, GuestMemoryMmap, IommuMemory, Permissions};

/// A unit with a fixed map from IOVA leaves to PAs, that counts its walks and clears
/// a leaf's CLEAN flag on the first write (dirty tracking).
#[derive(Debug, Default)]
struct Toy {
    /// Leaf IOVA -> (PA, size, perms).
    leaves: RwLock<BTreeMap<u64, (u64, u64, Perms)>>,
    walks: AtomicUsize,
}

impl Toy {
    fn map(&self, iova: u64, pa: u64, size: u64, perms: Perms) {
        self.leaves.write().unwrap().insert(iova, (pa, size, perms));
    }

    fn unmap(&self, iova: u64) {
        self.leaves.write().unwrap().remove(&iova);
    }

    fn walks(&self) -> usize {
        self.walks.load(Ordering::Relaxed)
    }
}

impl DeviceTranslate for Toy {
    fn translate(&self, iova: u64, access: Access) -> Result<Mapping, TranslateFault> {
        self.walks.fetch_add(1, Ordering::Relaxed);
        let mut leaves = self.leaves.write().unwrap();
        let Some((&leaf, &(pa, size, perms))) = leaves.range(..=iova).next_back() else {
            return Err(TranslateFault::new(iova, access, "not present"));
        };
        if iova - leaf >= size {
            return Err(TranslateFault::new(iova, access, "not present"));
        }
        let perms = if access.write && perms.contains(Perms::WRITE) {
            // The walk sets the dirty flag.
            let dirty = perms - Perms::CLEAN;
            leaves.insert(leaf, (pa, size, dirty));
            dirty
        } else {
            perms
        };
        if !perms.allows(access) {
            return Err(TranslateFault::new(iova, access, "permission"));
        }
        Ok(Mapping {
            iova: leaf,
            pa,
            size,
            perms,
        })
    }
}

const IOVA: u64 = 0x1_0000_0000;

/// The device's bridge, and the DMA view of RAM through it.
type Bridge = IommuBridge<Arc<Toy>>;
type Dma = IommuMemory<GuestMemoryMmap, Bridge>;

/// 8 MiB of RAM at 0, a unit with an empty map, its bridge and the DMA view.
fn setup() -> (GuestMemoryMmap, Arc<Toy>, Bridge, Dma) {
    let ram = GuestMemoryMmap::<()>::from_ranges(&[(GuestAddress(0), 8 << 20)]).unwrap();
    let toy = Arc::new(Toy::default());
    let bridge = IommuBridge::new(toy.clone());
    let dma = IommuMemory::new(ram.clone(), bridge.clone(), true, ());
    (ram, toy, bridge, dma)
}

#[test]
fn reads_and_writes_land_at_the_translated_addresses() {
    let (ram, toy, _bridge, dma) = setup();
    // Two IOVA pages to two PA pages in the other order.
    toy.map(IOVA, 0x5000, 0x1000, Perms::RW);
    toy.map(IOVA + 0x1000, 0x2000, 0x1000, Perms::RW);
    let data: Vec<u8> = (1..=16).collect();
    dma.write_slice(&data, GuestAddress(IOVA + 0xff8)).unwrap();
    let (mut lo, mut hi) = ([0; 8], [0; 8]);
    ram.read_slice(&mut lo, GuestAddress(0x5ff8)).unwrap();
    ram.read_slice(&mut hi, GuestAddress(0x2000)).unwrap();
    assert_eq!((lo.as_slice(), hi.as_slice()), (&data[..8], &data[8..]));
    let mut back = [0; 16];
    dma.read_slice(&mut back, GuestAddress(IOVA + 0xff8))
        .unwrap();
    assert_eq!(back.as_slice(), data.as_slice());
    ram.write_obj(0x1122_3344_5566_7788u64, GuestAddress(0x2008))
        .unwrap();
    assert_eq!(
        dma.read_obj::<u64>(GuestAddress(IOVA + 0x1008)).unwrap(),
        0x1122_3344_5566_7788
    );
    // Nothing else in RAM changed.
    let mut page = vec![0; 0x1000];
    ram.read_slice(&mut page, GuestAddress(0x3000)).unwrap();
    assert!(page.iter().all(|b| *b == 0));
}

#[test]
fn unmapped_and_read_only_pages_fault() {
    let (ram, toy, _bridge, dma) = setup();
    toy.map(IOVA, 0x5000, 0x1000, Perms::READ);
    toy.map(IOVA + 0x1000, 0x6000, 0x1000, Perms::RW);
    ram.write_obj(0xabu8, GuestAddress(0x5000)).unwrap();
    assert_eq!(dma.read_obj::<u8>(GuestAddress(IOVA)).unwrap(), 0xab);
    let err = dma.write_obj(1u8, GuestAddress(IOVA)).unwrap_err();
    assert!(
        err.to_string()
            .contains("write of IOVA 0x100000000 refused: permission"),
        "{err}"
    );
    let err = dma.read_obj::<u8>(GuestAddress(IOVA + 0x2000)).unwrap_err();
    assert!(err.to_string().contains("not present"), "{err}");
    // A write that runs off the end of the mapping changes nothing at all.
    assert!(
        dma.write_slice(&[7; 16], GuestAddress(IOVA + 0x1ff8))
            .is_err()
    );
    assert_eq!(ram.read_obj::<u64>(GuestAddress(0x6ff8)).unwrap(), 0);
    assert_eq!(ram.read_obj::<u8>(GuestAddress(0x5000)).unwrap(), 0xab);
    assert!(!dma.check_range(GuestAddress(IOVA), 1, Permissions::Write));
    assert!(dma.check_range(GuestAddress(IOVA), 0x2000, Permissions::Read));
}

#[test]
fn the_cache_follows_the_units_invalidations() {
    let (ram, toy, bridge, dma) = setup();
    toy.map(IOVA, 0x5000, 0x1000, Perms::RW);
    dma.write_obj(1u32, GuestAddress(IOVA)).unwrap();
    let walks = toy.walks();
    dma.write_obj(2u32, GuestAddress(IOVA + 4)).unwrap();
    dma.read_obj::<u32>(GuestAddress(IOVA + 8)).unwrap();
    assert_eq!(toy.walks(), walks, "hits walk nothing");
    // The guest remaps the page; until it invalidates, the cached translation serves.
    toy.map(IOVA, 0x7000, 0x1000, Perms::RW);
    dma.write_obj(3u32, GuestAddress(IOVA)).unwrap();
    assert_eq!(ram.read_obj::<u32>(GuestAddress(0x5000)).unwrap(), 3);
    bridge.invalidate_range(IOVA, 0x1000);
    dma.write_obj(4u32, GuestAddress(IOVA)).unwrap();
    assert_eq!(ram.read_obj::<u32>(GuestAddress(0x7000)).unwrap(), 4);
    assert_eq!(toy.walks(), walks + 1);
    // Unmapped and invalidated: a fault.
    toy.unmap(IOVA);
    bridge.invalidate_all();
    assert!(dma.read_obj::<u32>(GuestAddress(IOVA)).is_err());
}

#[test]
fn invalidating_part_of_a_leaf_drops_the_whole_leaf() {
    let (ram, toy, bridge, dma) = setup();
    toy.map(IOVA, 0x20_0000, 0x20_0000, Perms::RW);
    dma.write_obj(5u64, GuestAddress(IOVA + 0x10)).unwrap();
    dma.write_obj(6u64, GuestAddress(IOVA + 0x1f_fff0)).unwrap();
    assert_eq!(ram.read_obj::<u64>(GuestAddress(0x3f_fff0)).unwrap(), 6);
    let walks = toy.walks();
    toy.map(IOVA, 0x40_0000, 0x20_0000, Perms::RW);
    // The guest invalidates the last page of the 2 MiB leaf only.
    bridge.invalidate_range(IOVA + 0x1f_f000, 0x1000);
    dma.write_obj(7u64, GuestAddress(IOVA + 0x10)).unwrap();
    assert_eq!(ram.read_obj::<u64>(GuestAddress(0x40_0010)).unwrap(), 7);
    assert_eq!(toy.walks(), walks + 1);
}

#[test]
fn a_clean_leaf_is_walked_again_on_its_first_write() {
    let (_ram, toy, _bridge, dma) = setup();
    toy.map(IOVA, 0x5000, 0x1000, Perms::RW | Perms::CLEAN);
    dma.read_obj::<u32>(GuestAddress(IOVA)).unwrap();
    let walks = toy.walks();
    dma.read_obj::<u32>(GuestAddress(IOVA + 4)).unwrap();
    assert_eq!(toy.walks(), walks);
    // The cached translation is read-only until a walk sets the dirty flag.
    dma.write_obj(1u32, GuestAddress(IOVA)).unwrap();
    assert_eq!(toy.walks(), walks + 1);
    assert!(!toy.leaves.read().unwrap()[&IOVA].2.contains(Perms::CLEAN));
    dma.write_obj(2u32, GuestAddress(IOVA + 4)).unwrap();
    assert_eq!(toy.walks(), walks + 1);
}

#[test]
fn an_invalidation_waits_for_dma_in_flight_and_nested_dma_goes_on() {
    let (_ram, toy, bridge, dma) = setup();
    toy.map(IOVA, 0x5000, 0x1000, Perms::RW);
    toy.map(IOVA + 0x1000, 0x6000, 0x1000, Perms::RW);
    let copying = Barrier::new(2);
    let done = AtomicBool::new(false);
    std::thread::scope(|s| {
        s.spawn(|| {
            // A device holds a slice of guest memory (a copy in flight)...
            let slices = dma
                .get_slices(GuestAddress(IOVA), 8, Permissions::Write)
                .unwrap();
            copying.wait();
            std::thread::sleep(std::time::Duration::from_millis(50));
            // ... and makes another access meanwhile, while the invalidation waits.
            dma.write_obj(9u8, GuestAddress(IOVA + 0x1000)).unwrap();
            done.store(true, Ordering::Release);
            drop(slices);
        });
        copying.wait();
        bridge.invalidate_all();
        assert!(
            done.load(Ordering::Acquire),
            "the invalidation returned during the copy"
        );
    });
}
