//! `dump` prints exactly the expected table and registers; `decode` of the image `dump`
//! writes gives the same translations, and reports faults in corrupted images.

mod common;
use common::*;

/// Little-endian words of an image.
fn words(bytes: &[u8]) -> Vec<u64> {
    bytes
        .chunks_exact(8)
        .map(|c| u64::from_le_bytes(c.try_into().unwrap()))
        .collect()
}

fn put_word(bytes: &mut [u8], index: usize, value: u64) {
    bytes[index * 8..index * 8 + 8].copy_from_slice(&value.to_le_bytes());
}

#[test]
fn dump_of_a_known_table_matches_exactly() {
    // docs/formats.md §5.1, with the tables at 0x4000_0000 instead of 0x1000_0000.
    let (code, out, err) = run(&[
        "dump",
        "--format",
        "vtd-ss",
        "--map",
        "0x12345000:0x800000000:0x1000:rw",
    ]);
    assert_eq!(code, 0, "{err}");
    let expected = "\
# VT-d second stage: 4 levels, IAS 48, OAS 48, granule 0x1000, root 0x40000000
IOVA\t\t\tPML4E\t\t\tPDPE\t\t\tPDE\t\t\tPTE\t\t
0x0000000012345000 |\t0x0000000040001003\t0x0000000040002003\t0x0000000040003003\t0x0000000800000003

# hardware registers (id 1)
SSPTPTR        0x0000000040000000
AW             0x0000000000000002
context entry (legacy mode): 0x0000000040000001 0x0000000000000102
PASID entry (scalable mode): 0x0000000040000089 0x0000000000800001 0x0000000000000000 0x0000000000000000
    0x0000000000000000 0x0000000000000000 0x0000000000000000 0x0000000000000000
";
    assert_eq!(out, expected);
}

#[test]
fn dump_prints_each_formats_registers() {
    let cases = [
        // docs/formats.md §5.2: PGTT=1, AW=2, P; FSPTPTR in val[2]; PWSNP.
        (
            "vtd-fs",
            "PASID entry (scalable mode): 0x0000000000000049 0x0000000000800001 0x0000000040000000",
        ),
        // docs/formats.md §5.3: dword 0 for ASID 1, coherent walks; TTB0; MAIR.
        (
            "arm-s1",
            "context descriptor: 0x0001e205c0003510 0x0000000040000000 0x0000000000000000 0x00000000f404ff44",
        ),
        // 4K granule, IAS 48: start level 0 (S2SL0 = 2), VMID 1.
        (
            "arm-s2",
            "stream table entry: 0x000000000000000d 0x0000000000000000 0x044d3590",
        ),
    ];
    for (format, line) in cases {
        let (code, out, err) = run(&["dump", "--format", format, "--map", "0x1000:0x2000:4K"]);
        assert_eq!(code, 0, "{err}");
        assert!(out.contains(line), "{format}: no {line:?} in\n{out}");
    }
}

/// Expected translations of the maps below (aligned to 64K, for every granule): (iova, pa or None for unmapped).
const PROBES: [(u64, Option<u64>); 7] = [
    (0x1234_0000, Some(0x8_0000_0000)),
    (0x1235_6abc, Some(0x8_0001_6abc)),
    (0x1236_ffff, Some(0x8_0002_ffff)),
    (0x1237_0000, None),
    (0x4020_0000, Some(0x1_0000_0000)),
    (0x405f_fff8, Some(0x1_003f_fff8)),
    (0x4060_0000, None),
];

const MAPS: [&str; 2] = [
    "0x12340000:0x800000000:0x30000:rw",
    "0x40200000:0x100000000:4M:r",
];

/// The decode line expected for a probe.
fn expected_line(iova: u64, pa: Option<u64>) -> String {
    match pa {
        Some(pa) => format!("0x{iova:016x} -> 0x{pa:016x}"),
        None => format!("0x{iova:016x}  fault: not present"),
    }
}

#[test]
fn decode_of_a_dumped_image_gives_the_same_translations() {
    let configs: [&[&str]; 6] = [
        &["--format", "vtd-ss"],
        &["--format", "vtd-ss", "--ias", "39"],
        &["--format", "vtd-fs", "--ias", "57"],
        &["--format", "arm-s1"],
        &["--format", "arm-s1", "--granule", "16K", "--ias", "47"],
        &["--format", "arm-s2", "--granule", "64K", "--ias", "40"],
    ];
    for (i, config) in configs.iter().enumerate() {
        let image = scratch(&format!("round-trip-{i}.img"));
        let image = image.to_str().unwrap();
        let mut args = vec!["dump", "--image-out", image];
        args.extend_from_slice(config);
        for m in MAPS {
            args.extend(["--map", m]);
        }
        let (code, out, err) = run(&args);
        assert_eq!(code, 0, "{config:?}: {err}");
        // dump says where the image sits and where its root is.
        let note = out
            .lines()
            .find(|l| l.starts_with("# decode with: iommu-pt decode "))
            .unwrap_or_else(|| panic!("no decode hint in\n{out}"));
        let mut decode: Vec<String> = note["# decode with: iommu-pt ".len()..]
            .split_whitespace()
            .filter(|w| *w != "IOVA...")
            .map(String::from)
            .collect();
        decode.extend(PROBES.iter().map(|(iova, _)| format!("{iova:#x}")));
        let decode: Vec<&str> = decode.iter().map(String::as_str).collect();
        let (code, out, err) = run(&decode);
        assert_eq!(code, 0, "{config:?}: {err}");
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines.len(), PROBES.len(), "{out}");
        for ((iova, pa), line) in PROBES.iter().zip(&lines) {
            let want = expected_line(*iova, *pa);
            assert!(
                line.starts_with(&want),
                "{config:?}: {line:?}, want {want:?}"
            );
        }
        assert!(lines[0].contains("prot rw"), "{}", lines[0]);
        assert!(lines[4].contains("prot r "), "{}", lines[4]);
        // --dump walks the image: one line per leaf, as dump printed for the table.
        let mut with_dump = decode[..decode.len() - PROBES.len()].to_vec();
        with_dump.push("--dump");
        let (code, out, err) = run(&with_dump);
        assert_eq!(code, 0, "{err}");
        assert!(out.starts_with("# "), "{out}");
        assert!(out.contains("0x0000000012340000 |"), "{out}");
        std::fs::remove_file(image).unwrap();
    }
}

/// Writes a vtd-ss image with one 4K page at 0x12345000; returns its path and bytes.
fn vtd_image(name: &str) -> (String, Vec<u8>) {
    let path = scratch(name).to_str().unwrap().to_string();
    let (code, _, err) = run(&[
        "dump",
        "--format",
        "vtd-ss",
        "--map",
        "0x12345000:0x800000000:4K:rw",
        "--image-out",
        &path,
    ]);
    assert_eq!(code, 0, "{err}");
    let bytes = std::fs::read(&path).unwrap();
    (path, bytes)
}

fn decode_vtd(path: &str, root: &str, extra: &[&str]) -> (i32, String, String) {
    let mut args = vec![
        "decode",
        "--image",
        path,
        "--base",
        "0x40000000",
        "--format",
        "vtd-ss",
        "--root",
        root,
    ];
    args.extend_from_slice(extra);
    run(&args)
}

#[test]
fn corrupted_entries_fault_with_their_reason() {
    let (path, mut bytes) = vtd_image("corrupt.img");
    let w = words(&bytes);
    let pte = w.iter().position(|&v| v == 0x8_0000_0003).expect("the PTE");
    let pde = w.iter().position(|&v| v == 0x4000_3003).expect("the PDE");

    // Bit 62 is reserved in VT-d second-stage entries.
    put_word(&mut bytes, pte, 0x8_0000_0003 | 1 << 62);
    std::fs::write(&path, &bytes).unwrap();
    let (code, out, err) = decode_vtd(&path, "0x40000000", &["0x12345000"]);
    assert_eq!(code, 0, "a fault is a result: {err}");
    assert!(
        out.contains("fault: reserved bit set") && out.contains("reserved bits 0x4000000000000000"),
        "{out}"
    );

    // A next-table pointer outside the image.
    put_word(&mut bytes, pde, 0x7000_0003);
    std::fs::write(&path, &bytes).unwrap();
    let (code, out, _) = decode_vtd(&path, "0x40000000", &["0x12345000"]);
    assert_eq!(code, 0);
    assert!(
        out.contains("fault: table address 0x70000000 is not in memory"),
        "{out}"
    );

    // An input address beyond the 48-bit space.
    let (code, out, _) = decode_vtd(&path, "0x40000000", &["0x1000000000000"]);
    assert_eq!(code, 0);
    assert!(out.contains("fault: input address out of range"), "{out}");

    // A table that points back at the root: translations stay bounded, --dump refuses.
    put_word(&mut bytes, 1, 0x4000_0003);
    std::fs::write(&path, &bytes).unwrap();
    let (code, _, err) = decode_vtd(&path, "0x40000000", &["0x8000000000", "--dump"]);
    assert_eq!(code, 1);
    assert!(err.contains("cyclic or shared"), "{err}");
    std::fs::remove_file(path).unwrap();
}

#[test]
fn bad_images_and_roots_are_clear_errors() {
    let (path, bytes) = vtd_image("bad.img");
    let cases: [(&str, &str, &str); 3] = [
        ("0x50000000", "0x1000", "is not inside the image"),
        (
            "0x40000008",
            "0x1000",
            "is not aligned to the top table's size",
        ),
        ("0xfffffffffffff000", "0x1000", "is not inside the image"),
    ];
    for (root, iova, msg) in cases {
        let (code, out, err) = decode_vtd(&path, root, &[iova]);
        assert_eq!(code, 1, "{root}: {out}{err}");
        assert!(err.contains(msg), "{root}: {err}");
        assert_eq!(err.lines().count(), 1, "{err}");
    }
    // Truncated to a length that is no whole number of entries, and to less than a table.
    for (len, msg) in [
        (0x1004, "not a whole number of 64-bit entries"),
        (0x800, "shorter than one top table"),
    ] {
        std::fs::write(&path, &bytes[..len]).unwrap();
        let (code, _, err) = decode_vtd(&path, "0x40000000", &["0x12345000"]);
        assert_eq!(code, 1);
        assert!(err.contains(msg), "{err}");
    }
    std::fs::write(&path, b"").unwrap();
    let (code, _, err) = decode_vtd(&path, "0x40000000", &["0x12345000"]);
    assert_eq!(code, 1);
    assert!(err.contains("empty"), "{err}");
    std::fs::remove_file(&path).unwrap();
    let (code, _, err) = decode_vtd(&path, "0x40000000", &["0x12345000"]);
    assert_eq!(code, 1);
    assert!(!err.contains("panicked"), "{err}");
}

#[test]
fn garbage_images_never_panic() {
    // Every word a pseudo-random value, or a plausible pointer into the image.
    let path = scratch("garbage.img");
    let mut x = 0x1234_5678_9abc_def0u64;
    let mut bytes = vec![0u8; 64 << 10];
    for (i, chunk) in bytes.chunks_exact_mut(8).enumerate() {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let v = if i % 3 == 0 {
            (0x4000_0000 + (x % 16) * 0x1000) | (x >> 60)
        } else {
            x
        };
        chunk.copy_from_slice(&v.to_le_bytes());
    }
    std::fs::write(&path, &bytes).unwrap();
    for format in ["vtd-ss", "vtd-fs", "arm-s1", "arm-s2"] {
        let (code, out, err) = run(&[
            "decode",
            "--image",
            path.to_str().unwrap(),
            "--base",
            "0x40000000",
            "--format",
            format,
            "--root",
            "0x40000000",
            "--dump",
            "0x0",
            "0x12345678",
            "0x7fffffffffff",
            "0xffffffffffffffff",
        ]);
        assert!(code == 0 || code == 1, "{format}: {code} {out} {err}");
        assert!(!err.contains("panicked"), "{format}: {err}");
    }
    std::fs::remove_file(path).unwrap();
}
