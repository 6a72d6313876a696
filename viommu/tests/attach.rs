//! `Attachments`: exact attach/detach results, atomic range detaches, and readers that
//! never see a torn or half-changed configuration while writers swap them.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use viommu::attach::Attachments;

#[derive(Debug, PartialEq, Eq)]
struct Config {
    domain: u32,
    root: u64,
}

fn cfg(domain: u32) -> Config {
    Config {
        domain,
        root: u64::from(domain) << 12,
    }
}

#[test]
fn attach_detach_and_replace_return_what_they_changed() {
    let devs = Attachments::new();
    assert!(devs.is_empty() && devs.get(1).is_none());
    assert_eq!(devs.attach(1, cfg(10)), None);
    assert_eq!(devs.attach(2, Arc::new(cfg(20))), None);
    assert_eq!(devs.attach(1, cfg(11)).as_deref(), Some(&cfg(10)));
    assert_eq!(devs.get(1).as_deref(), Some(&cfg(11)));
    assert_eq!(devs.with(2, |c| c.map(|c| c.root)), Some(20 << 12));
    assert!(devs.with(3, |c| c.is_none()));
    assert_eq!(devs.len(), 2);
    assert_eq!(devs.detach(1).as_deref(), Some(&cfg(11)));
    assert_eq!(devs.detach(1), None);
    assert_eq!(format!("{devs:?}"), "Attachments { sources: [2] }");
    // The whole u64 range of device keys.
    devs.attach(u64::MAX, cfg(1));
    devs.attach(0, cfg(1));
    let all: Vec<u64> = devs.snapshot().iter().map(|(s, _)| *s).collect();
    assert_eq!(all, [0, 2, u64::MAX]);
    assert_eq!(devs.clear(), 3);
    assert!(devs.is_empty());
}

#[test]
fn range_and_domain_detaches_are_one_change() {
    let devs = Attachments::new();
    for sid in 0..64u64 {
        devs.attach(sid, cfg(sid as u32 % 4));
    }
    // SMMU CFGI_STE_RANGE over SIDs 16..32, then VT-d domain-selective for domain 3.
    let gone = devs.detach_where(|sid, _| sid >> 4 == 1);
    assert_eq!(
        gone.iter().map(|(s, _)| *s).collect::<Vec<_>>(),
        (16..32).collect::<Vec<_>>()
    );
    let gone = devs.detach_where(|_, c| c.domain == 3);
    assert_eq!(gone.len(), 12);
    assert!(gone.iter().all(|(s, c)| s % 4 == 3 && c.domain == 3));
    assert_eq!(devs.len(), 64 - 16 - 12);
    assert!(
        devs.snapshot()
            .iter()
            .all(|(s, c)| !(16..32).contains(s) && c.domain != 3)
    );
}

#[test]
fn readers_see_whole_configurations_while_writers_swap_them() {
    let devs = Attachments::new();
    for sid in 0..8 {
        devs.attach(sid, cfg(0));
    }
    let done = AtomicBool::new(false);
    std::thread::scope(|s| {
        for _ in 0..2 {
            s.spawn(|| {
                let mut last = [0u32; 8];
                while !done.load(Ordering::Relaxed) {
                    for (sid, last) in last.iter_mut().enumerate() {
                        // Each configuration is whole (root matches domain), and a
                        // device's domain only grows (no old value after a new one).
                        let domain = devs.with(sid as u64, |c| {
                            let c = c.expect("every device stays attached");
                            assert_eq!(c.root, u64::from(c.domain) << 12);
                            c.domain
                        });
                        assert!(domain >= *last, "{sid}: {domain} after {last}");
                        *last = domain;
                    }
                }
            });
        }
        s.spawn(|| {
            for round in 1..2_000u32 {
                let sid = u64::from(round % 8);
                let before = devs.attach(sid, cfg(round)).unwrap();
                assert!(before.domain < round);
                assert_eq!(devs.get(sid).unwrap().domain, round);
            }
            done.store(true, Ordering::Relaxed);
        });
    });
    assert_eq!(devs.len(), 8);
}
