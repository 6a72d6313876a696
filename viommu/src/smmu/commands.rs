//! The command queue: CMD_CFGI_*, CMD_TLBI_*, CMD_ATC_INV and CMD_SYNC applied to the
//! unit's caches (see [`super::SmmuUnit::command`] for what each does).

use super::Inner;
use crate::iotlb::{PageRange, PasidMatch, Selector};
use crate::memory::PhysAccess;
use pgtable_core::ViewMemory;
use smmu_format::{Command, CommandError, Opcode, SyncCompletion, TlbiRange};

/// The VMID half of an IOTLB tag.
const VMID_MASK: u32 = 0xffff_0000;

/// The tag of translations of `vmid` and `asid`.
fn tag(vmid: u16, asid: u16) -> u32 {
    u32::from(vmid) << 16 | u32::from(asid)
}

/// The pages a TLBI range names: one page for a single address (TG = 0), else
/// (NUM + 1) × 2^SCALE granules.
fn span(range: &TlbiRange) -> PageRange {
    match range.bytes() {
        Some(len) => PageRange::bytes(range.addr, len),
        None => PageRange::pages(range.addr >> 12, 1),
    }
}

/// The StreamID and SubstreamID of a configuration cache key.
pub(super) fn split_key(key: u64) -> (u32, Option<u32>) {
    let ssid = (key >> 63 == 1).then_some((key >> 32) as u32 & 0x7fff_ffff);
    (key as u32, ssid)
}

impl<V: ViewMemory> Inner<V> {
    /// Drops the cached configurations of the streams `which` selects, then the
    /// translations `entries` selects (coherently with fills in flight), in the IOTLB
    /// and the registered device caches.
    pub(super) fn invalidate_configs(
        &self,
        mut which: impl FnMut(u32, Option<u32>) -> bool,
        entries: &Selector,
    ) {
        self.cache.invalidate_configs(
            |key, _| {
                let (sid, ssid) = split_key(key);
                which(sid, ssid)
            },
            entries,
        );
    }

    /// CFGI of the `1 << low_bits` streams sharing `sid`'s other bits.
    fn cfgi_streams(&self, sid: u32, low_bits: u32) {
        let mask = if low_bits >= 32 {
            0
        } else {
            u32::MAX << low_bits
        };
        self.invalidate_configs(
            |s, _| s & mask == sid & mask,
            &Selector::ALL.source_block(sid, low_bits),
        );
    }

    pub(super) fn command(&self, words: [u64; 2]) -> Result<(), CommandError> {
        let cmd =
            Command::decode(words).map_err(|e| e.command_error().unwrap_or(CommandError::Ill))?;
        let cache = &self.cache;
        match cmd {
            Command::PrefetchConfig { .. } => {}
            Command::CfgiSte { sid, .. } | Command::CfgiCdAll { sid } => self.cfgi_streams(sid, 0),
            Command::CfgiSteRange { sid, range } => self.cfgi_streams(sid, u32::from(range) + 1),
            Command::CfgiAll => self.cfgi_streams(0, 32),
            Command::CfgiCd { sid, ssid, .. } => {
                // Transactions without SubstreamID may use CD 0 (S1CDMax = 0, or S1DSS
                // = 0b10).
                let entries = if ssid == 0 {
                    Selector::ALL.source(sid)
                } else {
                    Selector::ALL.source(sid).pasid(PasidMatch::Is(ssid))
                };
                self.invalidate_configs(
                    |s, ss| s == sid && (ss == Some(ssid) || ssid == 0 && ss.is_none()),
                    &entries,
                );
            }
            Command::TlbiNhAll { vmid } | Command::TlbiS12Vmall { vmid } => {
                cache.invalidate(&Selector::ALL.tag_masked(tag(vmid, 0), VMID_MASK));
            }
            Command::TlbiNhAsid { vmid, asid } => {
                cache.invalidate(&Selector::ALL.tag(tag(vmid, asid)));
            }
            Command::TlbiNhVa { vmid, range, .. } | Command::TlbiNhVaa { vmid, range } => {
                // Every ASID: global leaves are cached per ASID, and NH_VA removes
                // global entries whatever their ASID.
                let vm = Selector::ALL.tag_masked(tag(vmid, 0), VMID_MASK);
                cache.invalidate(&vm.pages(span(&range)));
            }
            Command::TlbiS2Ipa { vmid, range } => {
                // Fills in flight are withdrawn before the configurations are looked
                // at, so a nested one cached meanwhile is either seen here or refused
                // (the store-buffering argument of `crate::unit`).
                cache.iotlb().withdraw_fills();
                let nested = cache
                    .configs()
                    .snapshot()
                    .iter()
                    .any(|(_, c)| c.nested_vmid() == Some(vmid));
                let vm = Selector::ALL.tag_masked(tag(vmid, 0), VMID_MASK);
                if nested {
                    cache.invalidate(&vm);
                } else {
                    cache.invalidate(&vm.pages(span(&range)));
                }
            }
            Command::TlbiNsnhAll => cache.invalidate(&Selector::ALL),
            Command::TlbiEl2All
            | Command::TlbiEl2Asid { .. }
            | Command::TlbiEl2Va { .. }
            | Command::TlbiEl2Vaa { .. } => return Err(CommandError::Ill),
            Command::AtcInv {
                sid,
                ssid,
                global,
                size,
                addr,
            } => {
                let pasid = match (global, ssid) {
                    (true, _) => PasidMatch::Any,
                    (false, Some(ssid)) => PasidMatch::Is(ssid),
                    (false, None) => PasidMatch::Without,
                };
                // 2^52 pages or more: the whole input space (and device caches get
                // one invalidate_all, not a range whose byte length overflows).
                let pages = if size >= 52 {
                    PageRange::ALL
                } else {
                    PageRange::aligned(addr, u32::from(size))
                };
                cache.invalidate(&Selector::ALL.source(sid).pasid(pasid).pages(pages));
            }
            Command::Sync {
                completion,
                msi_addr,
                msi_data,
                ..
            } => {
                if completion == SyncCompletion::Irq && msi_addr.0 != 0 {
                    // Outside guest memory (an interrupt doorbell) it is the VMM's.
                    let _ = self.mem.write_bytes(msi_addr.0, &msi_data.to_le_bytes());
                }
            }
            Command::Other {
                opcode: Opcode::PriResp,
                ..
            } => return Err(CommandError::Ill),
            Command::Other { .. } => {}
        }
        Ok(())
    }
}
