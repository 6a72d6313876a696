//! Random and mutated guest memory never makes the SMMU unit panic or hang: random
//! words everywhere with random stream-table registers, valid chains (linear and
//! two-level stream and CD tables, every STE configuration, HTTU on) with random words
//! mutated, and random commands. Bounded iterations, fixed seeds.

mod smmu_common;

use pgtable_core::{Access, Iova, PhysAddr, Prot, TableWriter, WriterPage};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use smmu_common::*;
use smmu_format::{
    ArmConfig, ArmS1, Command, ContextDescriptor, L1CdDescriptor, L1StreamDescriptor, SteConfig,
    StreamTableEntry, StreamTableFormat,
};
use viommu::memory::{ImageMemory, PhysAccess};
use viommu::smmu::{SmmuCaps, SmmuUnit};

const ACCESSES: [Access; 5] = [
    Access::READ,
    Access::WRITE,
    Access::RW,
    Access {
        read: true,
        write: false,
        exec: true,
        privileged: true,
    },
    Access {
        read: false,
        write: true,
        exec: false,
        privileged: true,
    },
];

fn random_request(rng: &mut SmallRng, iovas: &[u64]) -> (u32, Option<u32>, u64, Access) {
    let sid = match rng.gen_range(0..4) {
        0 => rng.r#gen(),
        _ => rng.gen_range(0..8),
    };
    let ssid = match rng.gen_range(0..4) {
        0 => None,
        1 => Some(rng.gen_range(0..1 << 20)),
        _ => Some(rng.gen_range(0..4)),
    };
    let iova = match (rng.gen_range(0..4), iovas.is_empty()) {
        (0, _) | (_, true) => rng.r#gen(),
        (1, _) => rng.gen_range(0..1 << 40),
        _ => iovas[rng.gen_range(0..iovas.len())] + rng.gen_range(0..K4),
    };
    (sid, ssid, iova, ACCESSES[rng.gen_range(0..ACCESSES.len())])
}

/// A translation of anything: it returns.
fn poke(unit: &SmmuUnit<ImageMemory>, rng: &mut SmallRng, iovas: &[u64]) {
    let (sid, ssid, iova, access) = random_request(rng, iovas);
    if let Ok(m) = unit.translate(sid, ssid, iova, access) {
        assert!(m.contains(iova), "{m:x?} for {iova:#x}");
        assert!(m.perms.allows(access), "{m:x?} for {access:?}");
    }
}

#[test]
fn random_memory_and_registers() {
    let mut rng = SmallRng::seed_from_u64(0xF00D);
    for round in 0..16 {
        let g = Guest::new(1 << 20);
        for pa in (RAM..RAM + (1 << 20)).step_by(8) {
            // Mostly small pointer-like values into the RAM, with random low bits.
            let w: u64 = match rng.gen_range(0..3) {
                0 => rng.r#gen(),
                1 => (RAM + rng.gen_range(0..1 << 20)) | rng.gen_range(0..8),
                _ => rng.r#gen::<u64>() & 0xF800_0000_0000_0FFF | (RAM + rng.gen_range(0..1 << 20)),
            };
            g.mem.write_u64(pa, w).unwrap();
        }
        let unit = g.unit(SmmuCaps {
            iotlb_entries: 64,
            event_queue_entries: 16,
            ..SmmuCaps::default()
        });
        for _ in 0..8 {
            let base = RAM - (1 << 16) + rng.gen_range(0..(2 << 20));
            let cfg = rng.gen_range(0..1u64 << 18);
            unit.set_stream_table(base, cfg);
            for _ in 0..300 {
                poke(&unit, &mut rng, &[]);
            }
            unit.events();
        }
        let _ = round;
    }
}

/// A device-side cache that takes any invalidation.
#[derive(Debug)]
struct AnyTlb;

impl viommu::DeviceTlb for AnyTlb {
    fn invalidate_all(&self) {}

    fn invalidate_range(&self, iova: u64, len: u64) {
        assert!(
            len > 0 && iova.checked_add(len - 1).is_some(),
            "{iova:#x}+{len:#x}"
        );
    }
}

#[test]
fn random_commands() {
    let g = Guest::new(1 << 20);
    let unit = g.unit(SmmuCaps::default());
    g.linear_stream_table(&unit, 4);
    for sid in 0..16 {
        unit.register_device_tlb(sid, None, std::sync::Arc::new(AnyTlb));
        unit.register_device_tlb(sid, Some(sid), std::sync::Arc::new(AnyTlb));
    }
    let mut rng = SmallRng::seed_from_u64(0xC0DE);
    let opcodes = [
        0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x10, 0x11, 0x12, 0x13, 0x20, 0x21, 0x22, 0x23,
        0x28, 0x2A, 0x30, 0x40, 0x41, 0x44, 0x45, 0x46,
    ];
    for _ in 0..20_000 {
        let mut words: [u64; 2] = [rng.r#gen(), rng.r#gen()];
        if rng.gen_ratio(3, 4) {
            words[0] = words[0] & !0xff | opcodes[rng.gen_range(0..opcodes.len())];
        }
        if rng.gen_bool(0.5) {
            // MSI addresses into the RAM now and then.
            words[1] = words[1] & !((1 << 52) - 1) | (RAM + rng.gen_range(0..1 << 20));
        }
        if rng.gen_ratio(1, 4) {
            // SIDs, SSIDs and sizes the registered caches see.
            words[0] &= 0x0000_000F_000F_FFFF;
        }
        let _ = unit.command(words);
        let _ = unit.translate(rng.gen_range(0..16), None, rng.r#gen(), Access::READ);
    }
}

/// Every kind of chain, valid, in 4 MiB of RAM: what the mutations start from.
fn build(rng: &mut SmallRng) -> (Guest, SmmuUnit<ImageMemory>, Vec<u64>) {
    let g = Guest::new(4 << 20);
    let unit = g.unit(SmmuCaps {
        iotlb_entries: 256,
        event_queue_entries: 64,
        ..SmmuCaps::default()
    });
    // A two-level stream table: StreamIDs 0..8 in L1 descriptor 0.
    let l1 = g.alloc(16 * 8, 128);
    program(&unit, l1, 12, 8, StreamTableFormat::TwoLevel);
    let l2 = g.alloc(256 * 64, 256 * 64);
    g.write(
        l1,
        &[L1StreamDescriptor {
            span: 9,
            l2_table: PhysAddr(l2),
        }
        .encode()],
    );
    // Stage 1 tables, with random leaves.
    let mut iovas = vec![];
    let mut w = g.s1(48);
    for _ in 0..64 {
        let size = if rng.gen_ratio(1, 8) { M2 } else { K4 };
        let iova = rng.gen_range(0..1u64 << 32) & !(size - 1);
        let pa = RAM + (rng.gen_range(0..4u64 << 20) & !(size - 1));
        let _ = w.map(Iova(iova), PhysAddr(pa), size, Prot::RW, &mut g.pages());
        iovas.push(iova);
    }
    // Stage 2: IPA = PA - RAM for all of RAM.
    let mut s2 = g.s2(40);
    for off in (0..4 << 20).step_by(M2 as usize) {
        s2.map(Iova(off), PhysAddr(RAM + off), M2, Prot::RW, &mut g.pages())
            .unwrap();
    }
    // A nested stage 1 (tables at IPAs).
    let root = g.page();
    let mut n = TableWriter::new(
        ArmS1::new(ArmConfig::new(4096, 48, 48)).unwrap(),
        g.mem.clone(),
        PhysAddr(root),
    )
    .unwrap();
    for &iova in &iovas[..16] {
        let ipa = rng.gen_range(0..4u64 << 20) & !(K4 - 1);
        let _ = n.map(
            Iova(iova & !(K4 - 1)),
            PhysAddr(ipa),
            K4,
            Prot::RW,
            &mut || {
                let pa = g.page();
                Some(WriterPage {
                    pa: PhysAddr(pa),
                    pointer: pa - RAM,
                })
            },
        );
    }
    // CDs: a linear table of 4 (HTTU on in some), and a two-level one.
    let cds = g.alloc(4 * 64, 256);
    for i in 0..4 {
        g.cd(
            cds + 64 * i,
            &ContextDescriptor {
                ha: i % 2 == 1,
                hd: i == 3,
                ..linux_cd(&w, i as u16)
            },
        );
    }
    let cd_l1 = g.alloc(64, 64);
    let leaf = g.page();
    g.write(
        cd_l1,
        &[L1CdDescriptor {
            valid: true,
            l2_table: PhysAddr(leaf),
        }
        .encode()],
    );
    g.cd(leaf + 64, &linux_cd(&w, 9));
    let nested_cd = g.alloc(64, 64);
    g.cd(nested_cd, &n.format().cd(PhysAddr(root - RAM), 5, true));
    let s2_ste = s2.format().ste(s2.root(), 1, true);
    let stes = [
        StreamTableEntry {
            s1dss: 2,
            ..s1_ste(cds, 2)
        },
        StreamTableEntry {
            s1fmt: 1,
            s1dss: 1,
            ..s1_ste(cd_l1, 6)
        },
        s2_ste,
        StreamTableEntry {
            config: SteConfig::Nested,
            s1_context_ptr: PhysAddr(nested_cd - RAM),
            s2ha: true,
            s2hd: true,
            ..s2_ste
        },
        StreamTableEntry {
            valid: true,
            config: SteConfig::Bypass,
            ..Default::default()
        },
        s1_ste(cds + 64, 0),
    ];
    for (sid, ste) in stes.iter().enumerate() {
        g.write(l2 + 64 * sid as u64, &ste.encode());
    }
    (g, unit, iovas)
}

#[test]
fn mutated_chains_and_tables() {
    let mut rng = SmallRng::seed_from_u64(0xBAD5EED);
    let mut ok = 0;
    for _ in 0..8 {
        let (g, unit, iovas) = build(&mut rng);
        let used = g.alloc(8, 8) - RAM;
        for _ in 0..200 {
            unit.command(Command::CfgiAll.encode()).unwrap();
            unit.command(Command::TlbiNsnhAll.encode()).unwrap();
            for _ in 0..100 {
                let (sid, ssid, iova, access) = random_request(&mut rng, &iovas);
                if let Ok(m) = unit.translate(sid % 8, ssid.filter(|s| *s < 8), iova, access) {
                    assert!(m.contains(iova) && m.perms.allows(access), "{m:x?}");
                    ok += 1;
                }
            }
            unit.events();
            // Mutate 1 to 4 words of what the guest wrote.
            for _ in 0..rng.gen_range(1..=4) {
                let pa = RAM + (rng.gen_range(0..used) & !7);
                let old = g.read(pa);
                let new = match rng.gen_range(0..4) {
                    0 => old ^ 1 << rng.gen_range(0..64),
                    1 => rng.r#gen(),
                    2 => 0,
                    _ => (RAM + rng.gen_range(0..4u64 << 20)) | old & 0xFFF,
                };
                g.write(pa, &[new]);
            }
        }
    }
    // The chains kept translating for a while.
    assert!(ok > 10_000, "{ok}");
}
