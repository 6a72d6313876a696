//! The SMMU unit's caches against the guest's commands: what each command drops, that
//! a translation after the guest's change + invalidation + CMD_SYNC sees the change,
//! the commands refused, CMD_SYNC's MSI write, device TLBs, and a concurrent stress of
//! DMA threads against a guest unmapping and invalidating.

mod smmu_common;

use pgtable_core::{Access, Format, Iova, PhysAddr, Prot, TableWriter};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use smmu_common::*;
use smmu_format::{
    ArmS1, Command, CommandError, EventId, SteConfig, StreamTableEntry, SyncCompletion, TlbiRange,
};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use viommu::DeviceTlb;
use viommu::memory::{ImageMemory, PhysAccess};
use viommu::smmu::{SmmuCaps, SmmuUnit};

const SID: u32 = 1;

/// Stage 1 for stream [`SID`] (ASID 1, VMID 0): 16 pages at 0x10_0000 + i × 4K →
/// 0x8000_0000 + i × 4K.
struct Fx {
    g: Guest,
    unit: SmmuUnit<ImageMemory>,
    strtab: u64,
    w: TableWriter<ArmS1, ImageMemory>,
    cd_pa: u64,
}

const IOVA: u64 = 0x10_0000;

impl Fx {
    fn new() -> Fx {
        let g = Guest::new(8 << 20);
        let unit = g.unit(SmmuCaps::default());
        let strtab = g.linear_stream_table(&unit, 4);
        let mut w = g.s1(48);
        for i in 0..16 {
            w.map(
                Iova(IOVA + i * K4),
                PhysAddr(0x8000_0000 + i * K4),
                K4,
                Prot::RW,
                &mut g.pages(),
            )
            .unwrap();
        }
        let cd_pa = g.alloc(64, 64);
        g.cd(cd_pa, &linux_cd(&w, 1));
        g.ste(strtab, SID, &s1_ste(cd_pa, 0));
        g.ste(strtab, SID + 1, &s1_ste(cd_pa, 0));
        Fx {
            g,
            unit,
            strtab,
            w,
            cd_pa,
        }
    }

    fn pa(&self, sid: u32, iova: u64) -> Option<u64> {
        self.unit
            .translate(sid, None, iova, Access::READ)
            .ok()
            .and_then(|m| m.translate(iova))
    }

    fn unmap(&self, iova: u64) {
        let leaf = self.w.entry_address(Iova(iova), 0).unwrap();
        self.w.write_entry(leaf, 0).unwrap();
    }

    fn remap(&self, iova: u64, pa: u64) {
        let leaf = self.w.entry_address(Iova(iova), 0).unwrap();
        let raw = self.w.format().encode_leaf(pa, 0, Prot::RW);
        self.w.write_entry(leaf, raw).unwrap();
    }

    fn cmd(&self, c: Command) {
        self.unit.command(c.encode()).unwrap();
    }

    fn cached(&self) -> usize {
        self.unit.cache_stats().translations
    }
}

#[test]
fn tlbi_nh_va_after_an_unmap() {
    let fx = Fx::new();
    assert_eq!(fx.pa(SID, IOVA + 0x10), Some(0x8000_0010));
    // Unmapped, not yet invalidated: the IOTLB still translates (as the hardware may).
    fx.unmap(IOVA);
    assert_eq!(fx.pa(SID, IOVA + 0x10), Some(0x8000_0010));
    // Another VMID's invalidation does not drop it; this one's does (NH_VA drops the
    // address in every ASID of the VMID: global leaves are cached per ASID).
    fx.unit.command(tlbi_nh_va(1, 1, IOVA)).unwrap();
    fx.unit.command(sync()).unwrap();
    assert_eq!(fx.pa(SID, IOVA + 0x10), Some(0x8000_0010));
    fx.unit.command(tlbi_nh_va(0, 1, IOVA)).unwrap();
    fx.unit.command(sync()).unwrap();
    let f = fx
        .unit
        .translate(SID, None, IOVA + 0x10, Access::READ)
        .unwrap_err();
    assert_eq!(f.event.unwrap().event, EventId::FTranslation);
    // Remapped elsewhere: the new mapping after the next invalidation.
    fx.remap(IOVA, 0x9000_0000);
    fx.unit.command(tlbi_nh_va(0, 1, IOVA)).unwrap();
    fx.unit.command(sync()).unwrap();
    assert_eq!(fx.pa(SID, IOVA + 0x10), Some(0x9000_0010));
}

#[test]
fn range_invalidations() {
    let fx = Fx::new();
    for i in 0..16 {
        assert!(fx.pa(SID, IOVA + i * K4).is_some());
    }
    assert_eq!(fx.cached(), 16);
    // TG = 1 (4K), NUM = 1, SCALE = 2: (1 + 1) × 2^2 = 8 pages from IOVA + 4 pages.
    fx.cmd(Command::TlbiNhVa {
        vmid: 0,
        asid: 1,
        range: TlbiRange {
            leaf: true,
            ttl: 0,
            tg: 1,
            num: 1,
            scale: 2,
            addr: IOVA + 4 * K4,
        },
    });
    assert_eq!(fx.cached(), 8);
    // NH_VAA: every ASID of VMID 0, one page.
    fx.cmd(Command::TlbiNhVaa {
        vmid: 0,
        range: TlbiRange {
            addr: IOVA,
            ..Default::default()
        },
    });
    assert_eq!(fx.cached(), 7);
    // ATC_INV: the stream's 2^2 pages at IOVA + 12 pages.
    fx.cmd(Command::AtcInv {
        sid: SID,
        ssid: None,
        global: true,
        size: 2,
        addr: IOVA + 12 * K4,
    });
    assert_eq!(fx.cached(), 3);
}

#[test]
fn tag_invalidations() {
    let fx = Fx::new();
    let fill = || {
        for sid in [SID, SID + 1] {
            for i in 0..4 {
                assert!(fx.pa(sid, IOVA + i * K4).is_some());
            }
        }
        assert_eq!(fx.cached(), 8);
    };
    fill();
    for (c, left) in [
        (Command::TlbiNhAsid { vmid: 0, asid: 2 }, 8),
        (Command::TlbiNhAsid { vmid: 1, asid: 1 }, 8),
        (Command::TlbiNhAll { vmid: 1 }, 8),
        (Command::TlbiNhAsid { vmid: 0, asid: 1 }, 0),
    ] {
        fx.cmd(c);
        assert_eq!(fx.cached(), left, "{c:?}");
    }
    for c in [
        Command::TlbiNhAll { vmid: 0 },
        Command::TlbiS12Vmall { vmid: 0 },
        Command::TlbiNsnhAll,
        Command::CfgiAll,
    ] {
        fill();
        fx.cmd(c);
        assert_eq!(fx.cached(), 0, "{c:?}");
    }
}

#[test]
fn configuration_invalidations() {
    let fx = Fx::new();
    // Another table and CD (ASID 7) for the STE to point to.
    let mut w2 = fx.g.s1(48);
    w2.map(
        Iova(IOVA),
        PhysAddr(0xA000_0000),
        K4,
        Prot::RW,
        &mut fx.g.pages(),
    )
    .unwrap();
    let cd2 = fx.g.alloc(64, 64);
    fx.g.cd(cd2, &linux_cd(&w2, 7));
    assert_eq!(fx.pa(SID, IOVA), Some(0x8000_0000));
    assert_eq!(fx.pa(SID + 1, IOVA), Some(0x8000_0000));
    // The STE changes: the cached configuration stays until CFGI_STE.
    fx.g.ste(fx.strtab, SID, &s1_ste(cd2, 0));
    fx.unit.command(tlbi_nh_va(0, 1, IOVA)).unwrap();
    assert_eq!(fx.pa(SID, IOVA), Some(0x8000_0000));
    fx.cmd(Command::CfgiSte {
        sid: SID,
        leaf: true,
    });
    fx.unit.command(sync()).unwrap();
    assert_eq!(fx.pa(SID, IOVA), Some(0xA000_0000));
    assert_eq!(fx.pa(SID + 1, IOVA), Some(0x8000_0000));
    // CFGI_STE_RANGE: Range 0 covers StreamIDs 0 and 1, Range 1 also 2 and 3.
    fx.g.ste(fx.strtab, SID + 1, &s1_ste(cd2, 0));
    fx.cmd(Command::CfgiSteRange { sid: 0, range: 0 });
    assert_eq!(fx.pa(SID + 1, IOVA), Some(0x8000_0000));
    fx.cmd(Command::CfgiSteRange { sid: 0, range: 1 });
    assert_eq!(fx.pa(SID + 1, IOVA), Some(0xA000_0000));
    assert_eq!(fx.pa(SID, IOVA), Some(0xA000_0000));
    // The CD changes: CFGI_CD of SubstreamID 0 reaches transactions without one.
    fx.g.cd(cd2, &linux_cd(&fx.w, 1));
    assert_eq!(fx.pa(SID, IOVA), Some(0xA000_0000));
    fx.cmd(Command::CfgiCd {
        sid: SID,
        ssid: 3,
        leaf: true,
    });
    assert_eq!(fx.pa(SID, IOVA), Some(0xA000_0000));
    fx.cmd(Command::CfgiCd {
        sid: SID,
        ssid: 0,
        leaf: true,
    });
    assert_eq!(fx.pa(SID, IOVA), Some(0x8000_0000));
    // CFGI_CD_ALL; and the STE made to abort, CFGI_ALL.
    fx.g.cd(cd2, &linux_cd(&w2, 7));
    fx.cmd(Command::CfgiCdAll { sid: SID + 1 });
    assert_eq!(fx.pa(SID + 1, IOVA), Some(0xA000_0000));
    fx.g.ste(
        fx.strtab,
        SID,
        &StreamTableEntry {
            valid: true,
            config: SteConfig::Abort,
            ..Default::default()
        },
    );
    fx.cmd(Command::CfgiAll);
    assert_eq!(fx.pa(SID, IOVA), None);
    assert_eq!(fx.pa(SID + 1, IOVA), Some(0xA000_0000));
    // An aborting STE is not cached.
    assert_eq!(fx.unit.cache_stats().configurations, 1);
    // A new stream table drops everything.
    let _ = fx.cd_pa;
    fx.g.linear_stream_table(&fx.unit, 2);
    assert_eq!(fx.unit.cache_stats().configurations, 0);
    assert_eq!(fx.pa(SID, IOVA), None);
}

#[test]
fn tlbi_s2_ipa() {
    let g = Guest::new(8 << 20);
    let unit = g.unit(SmmuCaps::default());
    let strtab = g.linear_stream_table(&unit, 4);
    // Stage 2 alone for stream 1 (VMID 3); nested for stream 2 (VMID 4), its stage 1
    // mapping IOVA 0x5000 to IPA 0x10_0000, its tables and CD at IPA = PA - RAM.
    let mut s2 = g.s2(40);
    for off in (0..8 << 20).step_by(M2 as usize) {
        s2.map(Iova(off), PhysAddr(RAM + off), M2, Prot::RW, &mut g.pages())
            .unwrap();
    }
    s2.map(
        Iova(0x1_0000_0000),
        PhysAddr(0x8000_0000),
        K4,
        Prot::RW,
        &mut g.pages(),
    )
    .unwrap();
    g.ste(strtab, 1, &s2.format().ste(s2.root(), 3, true));
    let root = g.page();
    let mut s1 = TableWriter::new(
        ArmS1::new(smmu_format::ArmConfig::new(4096, 48, 48)).unwrap(),
        g.mem.clone(),
        PhysAddr(root),
    )
    .unwrap();
    let mut ipa_pages = || {
        let pa = g.page();
        Some(pgtable_core::WriterPage {
            pa: PhysAddr(pa),
            pointer: pa - RAM,
        })
    };
    s1.map(
        Iova(0x5000),
        PhysAddr(0x1_0000_0000),
        K4,
        Prot::RW,
        &mut ipa_pages,
    )
    .unwrap();
    let cd = g.alloc(64, 64);
    g.cd(cd, &s1.format().cd(PhysAddr(root - RAM), 1, true));
    g.ste(
        strtab,
        2,
        &StreamTableEntry {
            config: SteConfig::Nested,
            s1_context_ptr: PhysAddr(cd - RAM),
            ..s2.format().ste(s2.root(), 4, true)
        },
    );
    let pa = |sid, iova| {
        unit.translate(sid, None, iova, Access::READ)
            .ok()
            .and_then(|m| m.translate(iova))
    };
    assert_eq!(pa(1, 0x1_0000_0008), Some(0x8000_0008));
    assert_eq!(pa(2, 0x5008), Some(0x8000_0008));
    // Stage 2 moves IPA 0x1_0000_0000.
    let leaf = s2.entry_address(Iova(0x1_0000_0000), 0).unwrap();
    s2.write_entry(leaf, s2.format().encode_leaf(0x9000_0000, 0, Prot::RW))
        .unwrap();
    let s2_ipa = |vmid, addr| Command::TlbiS2Ipa {
        vmid,
        range: TlbiRange {
            leaf: true,
            addr,
            ..Default::default()
        },
    };
    // VMID 3's invalidation is for the stage-2-only stream, by IPA.
    unit.command(s2_ipa(3, 0x1_0000_0000).encode()).unwrap();
    assert_eq!(pa(1, 0x1_0000_0008), Some(0x9000_0008));
    assert_eq!(pa(2, 0x5008), Some(0x8000_0008));
    // VMID 4's reaches the nested stream's IOVAs (all of the VMID's).
    unit.command(s2_ipa(4, 0x1_0000_0000).encode()).unwrap();
    assert_eq!(pa(2, 0x5008), Some(0x9000_0008));
}

#[test]
fn commands_refused_and_accepted() {
    let fx = Fx::new();
    let ill = Err(CommandError::Ill);
    for words in [
        Command::TlbiEl2All.encode(),
        Command::TlbiEl2Asid { asid: 1 }.encode(),
        Command::TlbiEl2Va {
            asid: 1,
            range: TlbiRange::default(),
        }
        .encode(),
        Command::TlbiEl2Vaa {
            range: TlbiRange::default(),
        }
        .encode(),
        [0x41, 0],           // CMD_PRI_RESP
        [0x7f, 0],           // undefined
        [0x46 | 3 << 12, 0], // CMD_SYNC with the reserved CS
    ] {
        assert_eq!(fx.unit.command(words), ill, "{words:x?}");
    }
    for words in [
        Command::PrefetchConfig {
            sid: SID,
            ssid: None,
        }
        .encode(),
        [0x02, 0x1000], // CMD_PREFETCH_ADDR
        [0x44, 0],      // CMD_RESUME
        [0x45, 0],      // CMD_STALL_TERM
        [0x07, 0],      // QEMU's CMD_CFGI_ALL
        sync(),
    ] {
        assert_eq!(fx.unit.command(words), Ok(()), "{words:x?}");
    }
}

#[test]
fn cmd_sync_writes_its_msi_into_guest_memory() {
    let fx = Fx::new();
    let slot = fx.g.alloc(16, 16);
    fx.g.write(slot, &[0xFFFF_FFFF_FFFF_FFFF]);
    let c = Command::Sync {
        completion: SyncCompletion::Irq,
        msh: 3,
        msi_attr: 0xF,
        msi_data: 0x1234_5678,
        msi_addr: PhysAddr(slot + 4),
    };
    fx.unit.command(c.encode()).unwrap();
    assert_eq!(fx.g.read(slot), 0x1234_5678_FFFF_FFFF);
    // A doorbell outside memory is the VMM's to deliver.
    let c = Command::Sync {
        completion: SyncCompletion::Irq,
        msh: 3,
        msi_attr: 0xF,
        msi_data: 0x1234_5678,
        msi_addr: PhysAddr(0x0800_0000),
    };
    fx.unit.command(c.encode()).unwrap();
}

/// A device-side cache that logs the invalidations it gets.
#[derive(Debug, Default)]
struct Log(Mutex<Vec<Option<(u64, u64)>>>);

impl DeviceTlb for Log {
    fn invalidate_all(&self) {
        self.0.lock().unwrap().push(None);
    }

    fn invalidate_range(&self, iova: u64, len: u64) {
        self.0.lock().unwrap().push(Some((iova, len)));
    }
}

#[test]
fn device_tlbs_follow_the_commands_that_concern_them() {
    let fx = Fx::new();
    let log = Arc::new(Log::default());
    fx.unit.register_device_tlb(SID, None, log.clone());
    let take = || std::mem::take(&mut *log.0.lock().unwrap());
    fx.cmd(Command::CfgiSte {
        sid: SID + 1,
        leaf: true,
    });
    fx.cmd(Command::CfgiCd {
        sid: SID + 1,
        ssid: 0,
        leaf: true,
    });
    assert_eq!(take(), []);
    fx.cmd(Command::CfgiSte {
        sid: SID,
        leaf: true,
    });
    fx.cmd(Command::CfgiSteRange { sid: 0, range: 0 });
    fx.cmd(Command::TlbiNhAsid { vmid: 0, asid: 1 });
    assert_eq!(take(), [None, None, None]);
    fx.unit.command(tlbi_nh_va(0, 1, IOVA + 0x123)).unwrap();
    fx.cmd(Command::AtcInv {
        sid: SID,
        ssid: None,
        global: false,
        size: 1,
        addr: IOVA + 0x1000,
    });
    assert_eq!(take(), [Some((IOVA, 0x1000)), Some((IOVA, 0x2000))]);
    fx.cmd(Command::AtcInv {
        sid: SID + 1,
        ssid: None,
        global: false,
        size: 1,
        addr: IOVA,
    });
    fx.unit.command(sync()).unwrap();
    assert_eq!(take(), []);
}

/// Page `i` at version `v` maps to `pa(i, v)`; odd versions are mapped, even ones not.
fn pa_of(i: u64, v: u64) -> u64 {
    i << 40 | (v & 0xfff_ffff) << 12
}

/// DMA threads translate while the guest remaps and unmaps pages and invalidates
/// (CMD_TLBI_NH_VA, sometimes CMD_CFGI_STE, then CMD_SYNC). A translation may never
/// return a mapping older than the last invalidation completed before it started, nor
/// fault when the page was mapped and unchanged all along.
#[test]
fn dma_against_a_guest_unmapping_and_invalidating() {
    const PAGES: u64 = 64;
    let g = Guest::new(8 << 20);
    let unit = g.unit(SmmuCaps {
        iotlb_entries: 256,
        ..SmmuCaps::default()
    });
    let strtab = g.linear_stream_table(&unit, 4);
    let mut w = g.s1(48);
    for i in 0..PAGES {
        w.map(
            Iova(IOVA + i * K4),
            PhysAddr(pa_of(i, 1)),
            K4,
            Prot::RW,
            &mut g.pages(),
        )
        .unwrap();
    }
    let cd_pa = g.alloc(64, 64);
    g.cd(cd_pa, &linux_cd(&w, 1));
    // Two streams on the same CD (one tag).
    g.ste(strtab, 1, &s1_ste(cd_pa, 0));
    g.ste(strtab, 2, &s1_ste(cd_pa, 0));
    let leaves: Vec<u64> = (0..PAGES)
        .map(|i| w.entry_address(Iova(IOVA + i * K4), 0).unwrap().0)
        .collect();
    let fmt = *w.format();
    let mem = g.mem.clone();
    let version: Vec<AtomicU64> = (0..PAGES).map(|_| AtomicU64::new(1)).collect();
    let settled: Vec<AtomicU64> = (0..PAGES).map(|_| AtomicU64::new(1)).collect();
    let stop = AtomicBool::new(false);
    let (hits, faults, changes) = (AtomicU64::new(0), AtomicU64::new(0), AtomicU64::new(0));
    let deadline = Instant::now() + Duration::from_millis(1000);
    std::thread::scope(|s| {
        for t in 0..2u32 {
            let (unit, version, settled, stop) = (&unit, &version, &settled, &stop);
            let (hits, faults) = (&hits, &faults);
            s.spawn(move || {
                let mut rng = SmallRng::seed_from_u64(u64::from(t));
                while !stop.load(Ordering::Relaxed) {
                    let i = rng.gen_range(0..PAGES);
                    let iova = IOVA + i * K4 + rng.gen_range(0..K4);
                    let floor = settled[i as usize].load(Ordering::Acquire);
                    let got = unit.translate(1 + t, None, iova, Access::READ);
                    let after = version[i as usize].load(Ordering::Acquire);
                    match got {
                        Ok(m) => {
                            let pa = m.translate(iova).unwrap();
                            let v = (pa >> 12) & 0xfff_ffff;
                            assert_eq!(pa >> 40, i);
                            assert!(v % 2 == 1, "an unmapped version {v}");
                            assert!(
                                v >= floor,
                                "page {i}: version {v} after {floor} was settled"
                            );
                            assert!(v <= after, "page {i}: version {v} from the future {after}");
                            hits.fetch_add(1, Ordering::Relaxed);
                        }
                        Err(f) => {
                            assert_eq!(f.event.unwrap().event, EventId::FTranslation);
                            assert!(
                                !(after == floor && floor % 2 == 1),
                                "page {i} faulted while mapped at version {floor}"
                            );
                            faults.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
            });
        }
        // The guest.
        let mut rng = SmallRng::seed_from_u64(99);
        while Instant::now() < deadline {
            let i = rng.gen_range(0..PAGES);
            let v = version[i as usize].load(Ordering::Relaxed) + 1;
            version[i as usize].store(v, Ordering::SeqCst);
            let raw = if v % 2 == 1 {
                fmt.encode_leaf(pa_of(i, v), 0, Prot::RW)
            } else {
                0
            };
            mem.write_u64(leaves[i as usize], raw).unwrap();
            if rng.gen_ratio(1, 16) {
                for sid in [1, 2] {
                    unit.command(Command::CfgiSte { sid, leaf: true }.encode())
                        .unwrap();
                }
            } else {
                unit.command(tlbi_nh_va(0, 1, IOVA + i * K4)).unwrap();
            }
            unit.command(sync()).unwrap();
            settled[i as usize].store(v, Ordering::Release);
            changes.fetch_add(1, Ordering::Relaxed);
        }
        stop.store(true, Ordering::Relaxed);
    });
    let (hits, faults, changes) = (hits.into_inner(), faults.into_inner(), changes.into_inner());
    eprintln!("{hits} translations, {faults} faults, {changes} guest changes");
    assert!(hits > 1000 && faults > 100 && changes > 100);
}
