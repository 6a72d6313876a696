//! `decode` starting from a device: the chain printed structure by structure, then each
//! IOVA's translation or its fault record, from an image a guest would have written.

mod common;
use common::*;

use pgtable_core::{Iova, PhysAddr, Prot, TableWriter, WriterPage};
use std::path::PathBuf;
use std::sync::Arc;
use viommu::memory::{ImageMemory, PhysAccess};
use vtd_format::{
    Agaw, ContextEntry, ContextTablePointer, PasidDirEntry, PasidEntry, RootEntry,
    ScalableContextEntry, ScalableRootEntry, VtdSs,
};

/// A 1 MiB image at physical address 0 holding a legacy chain (RTADDR 0x1000) and a
/// scalable one (RTADDR 0x8000 | 0x400) for device 00:03.0, both to a second-stage
/// table mapping IOVA 0x10_0000 to 0x8_0000 read-only; written to a file.
fn image(name: &str) -> PathBuf {
    let mem = Arc::new(ImageMemory::anonymous(0, 1 << 20).unwrap());
    let put = |pa: u64, words: &[u64]| {
        for (i, w) in words.iter().enumerate() {
            mem.write_u64(pa + 8 * i as u64, *w).unwrap();
        }
    };
    // Legacy: root 0x1000 -> context table 0x2000 -> second stage at 0x3000.
    put(
        0x1000,
        &RootEntry {
            present: true,
            context_table: PhysAddr(0x2000),
        }
        .encode(),
    );
    put(
        0x2000 + 0x18 * 16,
        &ContextEntry::second_stage(0x3000, Agaw::Bits48, 7).words(),
    );
    let mut next = 0x20_000u64;
    let mut page = || {
        let pa = next;
        next += 0x1000;
        Some(WriterPage {
            pa: PhysAddr(pa),
            pointer: pa,
        })
    };
    let mut ss =
        TableWriter::new(VtdSs::new(48, 48).unwrap(), mem.clone(), PhysAddr(0x3000)).unwrap();
    ss.map(
        Iova(0x10_0000),
        PhysAddr(0x8_0000),
        0x1000,
        Prot::READ,
        &mut page,
    )
    .unwrap();
    // Scalable: root 0x8000 -> context 0x9000 -> PASID dir 0xa000 -> table 0xb000.
    let lower = ContextTablePointer {
        present: true,
        table: PhysAddr(0x9000),
    };
    put(
        0x8000,
        &ScalableRootEntry {
            lower,
            upper: ContextTablePointer::default(),
        }
        .encode(),
    );
    let ce = ScalableContextEntry {
        present: true,
        paside: true,
        pasid_dir: PhysAddr(0xa000),
        ..Default::default()
    };
    put(0x9000 + 0x18 * 32, &ce.encode());
    put(
        0xa000,
        &[PasidDirEntry {
            present: true,
            fpd: false,
            table: PhysAddr(0xb000),
        }
        .encode()],
    );
    put(
        0xb000 + 64,
        &PasidEntry::second_stage(0x3000, Agaw::Bits48, 9).val,
    );
    let mut bytes = vec![0u8; 1 << 20];
    mem.read_bytes(0, &mut bytes).unwrap();
    let path =
        PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("{}-{name}", std::process::id()));
    std::fs::write(&path, bytes).unwrap();
    path
}

#[test]
fn a_legacy_chain_then_translations_and_faults() {
    let path = image("legacy.img");
    let img = path.to_str().unwrap();
    let (code, out, err) = run(&[
        "decode",
        "--image",
        img,
        "--base",
        "0",
        "--vtd-root",
        "0x1000",
        "--bdf",
        "00:03.0",
        "0x100123",
        "0x200000",
    ]);
    assert_eq!(code, 0, "{err}");
    let expected = "\
VT-d device 00:03.0, RTADDR 0x1000:
  root entry                   at 0x1000: 0x0000000000002001 0x0000000000000000
  context entry                at 0x2180: 0x0000000000003001 0x0000000000000702
  -> legacy mode, domain 7, VT-d second stage at 0x3000
0x0000000000100123 -> 0x0000000000080123  size 0x1000  grants rx
0x0000000000200000  fault (r): 0x06 (read from a page without read permission)  record 0x0000000000200000 0xc000000600000018
";
    assert_eq!(out, expected);
    // A write to the read-only page: reason 0x05, T1 clear in the record.
    let (code, out, _) = run(&[
        "decode",
        "--image",
        img,
        "--base",
        "0",
        "--vtd-root",
        "0x1000",
        "--bdf",
        "00:03.0",
        "--access",
        "w",
        "0x100000",
    ]);
    assert_eq!(code, 0);
    assert!(
        out.ends_with("0x0000000000100000  fault (w): 0x05 (write to a page without write permission)  record 0x0000000000100000 0x8000000500000018\n"),
        "{out}"
    );
    // A device with no context entry: the chain stops with its fault.
    let (code, out, _) = run(&[
        "decode",
        "--image",
        img,
        "--base",
        "0",
        "--vtd-root",
        "0x1000",
        "--bdf",
        "00:04.0",
    ]);
    assert_eq!(code, 0);
    assert!(
        out.ends_with("  chain fault: 0x02 (context entry not present)\n"),
        "{out}"
    );
}

#[test]
fn a_scalable_chain_with_a_pasid() {
    let path = image("scalable.img");
    let img = path.to_str().unwrap();
    let (code, out, err) = run(&[
        "decode",
        "--image",
        img,
        "--base",
        "0",
        "--vtd-root",
        "0x8400",
        "--bdf",
        "00:03.0",
        "--pasid",
        "1",
        "0x100008",
    ]);
    assert_eq!(code, 0, "{err}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "VT-d device 00:03.0 PASID 0x1, RTADDR 0x8400:");
    assert!(lines[1].starts_with("  scalable-mode root entry     at 0x8000: 0x0000000000009001"));
    assert!(lines[2].starts_with("  scalable-mode context entry  at 0x9300: 0x000000000000a009"));
    assert!(lines[3].starts_with("  PASID-directory entry        at 0xa000: 0x000000000000b001"));
    assert!(lines[4].starts_with(
        "  PASID entry                  at 0xb040: 0x0000000000003089 0x0000000000000009"
    ));
    assert_eq!(
        lines[5],
        "  -> scalable mode, domain 9, VT-d second stage at 0x3000"
    );
    assert_eq!(
        lines[6],
        "0x0000000000100008 -> 0x0000000000080008  size 0x1000  grants rx"
    );
    // PASID 2 has no entry: fault 0x59, and the record carries the PASID.
    let (_, out, _) = run(&[
        "decode",
        "--image",
        img,
        "--base",
        "0",
        "--vtd-root",
        "0x8400",
        "--bdf",
        "00:03.0",
        "--pasid",
        "2",
    ]);
    assert!(
        out.ends_with("  chain fault: 0x59 (PASID entry not present)\n"),
        "{out}"
    );
}

#[test]
fn device_arguments_are_checked() {
    let path = image("args.img");
    let img = path.to_str().unwrap();
    for (args, msg) in [
        (vec!["--vtd-root", "0x1000"], "--bdf"),
        (
            vec!["--vtd-root", "0x1000", "--bdf", "00:20.0"],
            "device is 0..1f",
        ),
        (
            vec!["--vtd-root", "0x1000", "--bdf", "0003.0"],
            "bus:device.function",
        ),
        (
            vec!["--vtd-root", "0x1000", "--bdf", "00:03.0", "--access", "q"],
            "access letter",
        ),
        (
            vec![
                "--vtd-root",
                "0x1000",
                "--bdf",
                "00:03.0",
                "--pasid",
                "0x100000",
            ],
            "wider than 20 bits",
        ),
        (
            vec![
                "--vtd-root",
                "0x1000",
                "--bdf",
                "00:03.0",
                "--format",
                "vtd-ss",
            ],
            "cannot be used",
        ),
    ] {
        let mut all = vec!["decode", "--image", img, "--base", "0"];
        all.extend(args);
        let (code, _, err) = run(&all);
        assert_eq!(code, 2, "{all:?}: {err}");
        assert!(err.contains(msg), "{all:?}: {err}");
    }
}

/// A 1 MiB image at 0 holding a linear stream table at 0x10000 (16 StreamIDs), the STE
/// of StreamID 3 (stage 1, two CDs at 0x20000), CD 1 pointing at a 4K stage-1 table that
/// maps IOVA 0x10_0000 to 0x8_0000 read-write with ASID 7.
fn smmu_image(name: &str) -> PathBuf {
    use smmu_format::{ArmConfig, ArmS1, SteConfig, StreamTableEntry};
    let mem = Arc::new(ImageMemory::anonymous(0, 1 << 20).unwrap());
    let mut next = 0x40_000u64;
    let mut page = || {
        let pa = next;
        next += 0x1000;
        Some(WriterPage {
            pa: PhysAddr(pa),
            pointer: pa,
        })
    };
    let root = page().unwrap().pa;
    let mut s1 =
        TableWriter::new(ArmS1::new(ArmConfig::default()).unwrap(), mem.clone(), root).unwrap();
    s1.map(
        Iova(0x10_0000),
        PhysAddr(0x8_0000),
        0x1000,
        Prot::RW,
        &mut page,
    )
    .unwrap();
    let ste = StreamTableEntry {
        valid: true,
        config: SteConfig::S1Translate,
        s1_context_ptr: PhysAddr(0x20000),
        s1cdmax: 1,
        ..Default::default()
    };
    for (i, w) in ste.encode().iter().enumerate() {
        mem.write_u64(0x10000 + 3 * 64 + 8 * i as u64, *w).unwrap();
    }
    let cd = s1.format().cd(root, 7, true);
    for (i, w) in cd.encode().iter().enumerate() {
        mem.write_u64(0x20000 + 64 + 8 * i as u64, *w).unwrap();
    }
    let mut bytes = vec![0u8; 1 << 20];
    mem.read_bytes(0, &mut bytes).unwrap();
    let path = scratch(name);
    std::fs::write(&path, bytes).unwrap();
    path
}

#[test]
fn an_smmu_chain_then_translations_and_events() {
    let path = smmu_image("smmu.img");
    let img = path.to_str().unwrap();
    let base = [
        "decode",
        "--image",
        img,
        "--base",
        "0",
        "--smmu-strtab",
        "0x10000",
        "--strtab-cfg",
        "4",
    ];
    let mut args = base.to_vec();
    args.extend(["--sid", "3", "--ssid", "1", "0x100010", "0x200000"]);
    let (code, out, err) = run(&args);
    assert_eq!(code, 0, "{err}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(
        lines[0],
        "SMMUv3 StreamID 0x3 SubstreamID 0x1, STRTAB_BASE 0x10000, STRTAB_BASE_CFG 0x4:"
    );
    assert!(
        lines[1].starts_with("  stream table entry           at 0x100c0: "),
        "{out}"
    );
    assert!(
        lines[2].starts_with("  context descriptor           at 0x20040: "),
        "{out}"
    );
    assert_eq!(
        lines[3],
        "  -> Arm SMMUv3 stage 1 at 0x40000, VMID 0, ASID 7"
    );
    assert_eq!(
        lines[4],
        "0x0000000000100010 -> 0x0000000000080010  size 0x1000  grants rwx"
    );
    assert!(lines[5].starts_with("0x0000000000200000  fault (r): F_TRANSLATION (0x10) for StreamID 0x3 SubstreamID 0x1, stage 1, CLASS IN, input 0x200000"), "{out}");
    assert!(lines[5].contains("record 0x0000000300001810 "), "{out}");
    // A StreamID beyond the table: C_BAD_STREAMID.
    let mut args = base.to_vec();
    args.extend(["--sid", "16"]);
    let (_, out, _) = run(&args);
    assert!(
        out.ends_with("  chain fault: C_BAD_STREAMID (0x02) for StreamID 0x10\n"),
        "{out}"
    );
    // A SubstreamID beyond the CD table: C_BAD_SUBSTREAMID.
    let mut args = base.to_vec();
    args.extend(["--sid", "3", "--ssid", "2"]);
    let (_, out, _) = run(&args);
    assert!(
        out.ends_with("  chain fault: C_BAD_SUBSTREAMID (0x08) for StreamID 0x3 SubstreamID 0x2\n"),
        "{out}"
    );
}
