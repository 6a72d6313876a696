//! [`Iotlb`]: a concurrent translation cache, tagged as the hardware tags translations
//! and invalidated the way the guest's invalidation commands say.
//!
//! ## Shape
//!
//! A fixed, power-of-two array of slots chosen at construction (bounded memory), direct
//! mapped: a key's slot is its page plus a hash of its (source, PASID, tag), so the
//! pages of one context fill consecutive slots and a working set up to the capacity
//! never conflicts. An insert evicts whatever its slot held. Each slot is a small
//! seqlock-protected record of 64-bit atomics (key, page, state and permissions, output
//! page), one cache line.
//!
//! A **lookup** takes no lock and writes nothing: a hash, an acquire load of the slot's
//! sequence, four relaxed loads, an acquire fence and a re-load of the sequence. A slot
//! being written (odd sequence) or changed meanwhile reads as a miss, never as a torn
//! entry. An **insert** takes the slot's lock bit (the odd sequence) by compare-exchange
//! and gives up if another writer holds it (a cache may always decline). An
//! **invalidation** scans every slot and removes, under the slot's lock bit, each entry
//! its [`Selector`] matches.
//!
//! ## Coherence
//!
//! *After an invalidation returns, no lookup that starts afterwards returns a
//! translation it removed*, including one that a concurrent miss walked before the
//! invalidation and inserts after it. A fill therefore goes in three steps:
//!
//! 1. [`Iotlb::begin_fill`] reads the invalidation generation (acquire) **before** the
//!    walk (and before the unit reads the device's configuration) and returns a
//!    [`FillTicket`];
//! 2. [`Iotlb::insert`] writes the entry as *pending* (never returned by a lookup), then,
//!    after a `SeqCst` fence, re-reads the generation: if it moved, an invalidation
//!    started after the walk began, so the entry may be stale: it is withdrawn and not
//!    cached (the walk's result still serves the request that made it, which overlapped
//!    the invalidation);
//! 3. otherwise it publishes the entry by compare-exchange of the slot's sequence from
//!    the value its pending write left: if anyone touched the slot since (an
//!    invalidation removing it, another insert), the publish fails and nothing is cached.
//!
//! An invalidation first increments the generation (release), then issues a `SeqCst`
//! fence, then scans. Why no stale entry survives it, for a fill F and an invalidation I
//! that removes F's key:
//! - if F's ticket read I's increment, F synchronized with I, so F's walk saw the
//!   guest's table update that preceded I: F's entry is the new truth;
//! - otherwise F's ticket predates I's increment. F's pending write and generation
//!   re-read, and I's increment and scan, are each separated by a `SeqCst` fence (the
//!   store-buffering pattern): either F's re-read sees I's increment (step 2 withdraws
//!   the entry), or I's scan sees F's pending write and removes it, which changes the
//!   slot's sequence, so F's publish (step 3) fails; if F published first, I's scan
//!   finds the valid entry (waiting out the slot's lock bit if needed) and removes it.
//!
//! Either way, once I's scan has passed the slot, the slot holds no entry for F's key
//! older than I, and every later write to it is a fill that passed the same argument.
//! A lookup that starts after I returned (ordered after it, e.g. through the guest's
//! wait for the invalidation's completion) reads the slot's sequence with acquire, so
//! it sees I's removal or a later write. The model in `tests/loom.rs` checks this
//! protocol (with loom's atomics, from the crate's `sync` module), and `tests/iotlb_stress.rs`
//! stresses it against a changing guest table.
//!
//! The generation is global: any invalidation withdraws the fills in flight across it,
//! which costs a walk later but is never wrong (removing more than asked is always
//! allowed), and keeps the argument above independent of what the selectors match.
//!
//! ## Keys, leaves and the guest's commands
//!
//! Entries are cached at 4 KiB granularity: a walk that found a larger leaf inserts the
//! 4 KiB piece it needed, recording the leaf's size, so a range invalidation that covers
//! any part of the leaf removes every cached piece of it. Only leaves are cached (no
//! paging-structure or configuration entries), so VT-d's IH hint and Arm's Leaf flag
//! change nothing here; global (non-ASID-tagged) leaves are cached per ASID, so a
//! per-ASID invalidation removes them too (more than needed, never less).
//!
//! The [`IotlbKey::tag`] is the domain the hardware tags with: the VT-d DID, or for the
//! SMMU `vmid << 16 | asid` (so a per-VMID command selects with
//! [`Iotlb::invalidate_tag_masked`]`(vmid << 16, 0xffff_0000)`). The guest's commands
//! map onto the invalidation methods like this:
//!
//! | command | call |
//! |---|---|
//! | VT-d context-cache global; IOTLB global | [`Iotlb::invalidate_all`] |
//! | VT-d context-cache domain-selective; IOTLB domain-selective (DSI); PASID-cache all-of-DID | [`Iotlb::invalidate_tag`]`(did)` |
//! | VT-d context-cache device-selective (SID, FM) | [`Iotlb::invalidate_source_block`]`(sid, fm_low_bits)` |
//! | VT-d IOTLB page-selective (PSI: DID, ADDR, AM; IH ignored) | [`Iotlb::invalidate_tag_range`]`(did, PageRange::aligned(addr, am))` |
//! | VT-d PASID-based IOTLB, G=2 / PASID-cache PASID-selective | [`Iotlb::invalidate_tag_pasid`]`(did, pasid)` |
//! | VT-d PASID-based IOTLB, G=3 (ADDR, AM) | [`Iotlb::invalidate_tag_pasid_range`] |
//! | VT-d device-TLB (SID, ADDR, S) / PASID-based device-TLB | [`Iotlb::invalidate_source_range`]`(sid, pasid, range)` |
//! | SMMU CFGI_STE / CFGI_CD_ALL | [`Iotlb::invalidate_source`]`(sid)` |
//! | SMMU CFGI_STE_RANGE (Range) / CFGI_ALL (Range = 31) | [`Iotlb::invalidate_source_block`]`(sid, range + 1)` |
//! | SMMU CFGI_CD (SID, SSID) | [`Iotlb::invalidate_source_pasid`]`(sid, ssid)` |
//! | SMMU TLBI_NH_ASID / TLBI_NH_VA | [`Iotlb::invalidate_tag`] / [`Iotlb::invalidate_tag_range`] with `vmid << 16 \| asid` |
//! | SMMU TLBI_NH_ALL, TLBI_S12_VMALL (VMID) | [`Iotlb::invalidate_tag_masked`]`(vmid << 16, 0xffff_0000)` |
//! | SMMU TLBI_NH_VAA; TLBI_S2_IPA of a stage-2-only config (keyed by IPA) | [`Iotlb::invalidate`] with [`Selector::tag_masked`] and [`Selector::pages`] |
//! | SMMU TLBI_S2_IPA when stage 1 is nested (IOVA unknown) | [`Iotlb::invalidate_tag_masked`]`(vmid << 16, 0xffff_0000)` |
//! | SMMU TLBI_NSNH_ALL | [`Iotlb::invalidate_all`] |
//! | SMMU ATC_INV | [`Iotlb::invalidate_source_range`] |
//!
//! ## Using it from a unit
//!
//! ```
//! use viommu::iotlb::{Iotlb, IotlbEntry, IotlbKey, PageRange};
//! use viommu::{Access, Perms};
//! let tlb = Iotlb::new(1024);
//! let key = IotlbKey::new(0x0100, None, 7, 0x1234_5678);
//! let access = Access::READ;
//! let entry = match tlb.lookup(&key) {
//!     Some(e) if e.perms.allows(access) => e,
//!     _ => {
//!         let ticket = tlb.begin_fill(); // before reading the config and walking
//!         // ... walk the guest's tables: a 2 MiB leaf at 0x8_0020_0000, read-write ...
//!         let e = IotlbEntry::piece_of_leaf(0x8_0020_0000, 21, 0x1234_5678, Perms::RW);
//!         tlb.insert(ticket, &key, e);
//!         e
//!     }
//! };
//! assert_eq!(entry.translate(0x1234_5678), 0x8_0034_5678);
//! assert_eq!(tlb.lookup(&key), Some(entry));
//! // The guest invalidates one page elsewhere in the 2 MiB leaf: the piece goes too.
//! assert_eq!(tlb.invalidate_tag_range(7, PageRange::aligned(0x1220_0000, 0)), 1);
//! assert_eq!(tlb.lookup(&key), None);
//! ```

use crate::access::Perms;
use crate::sync::{AtomicU64, Ordering, fence, spin};
use std::fmt;

/// The granule of the cache: entries are 4 KiB pages.
pub const PAGE_SHIFT: u32 = 12;

/// What a cached translation is tagged with, as the hardware tags it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct IotlbKey {
    /// The requester: VT-d source id (bus:dev.fn) or SMMU StreamID.
    pub source: u32,
    /// The PASID (VT-d) or SubstreamID (SMMU), for requests that carry one.
    pub pasid: Option<u32>,
    /// The domain tag: VT-d domain id, or the SMMU's `vmid << 16 | asid`.
    pub tag: u32,
    /// The input page: IOVA (or IPA, for stage-2-only translation) >> 12.
    pub page: u64,
}

impl IotlbKey {
    /// The key of the page holding `iova`.
    ///
    /// ```
    /// # use viommu::iotlb::IotlbKey;
    /// assert_eq!(IotlbKey::new(1, Some(2), 3, 0x1234_5678).page, 0x12345);
    /// ```
    pub const fn new(source: u32, pasid: Option<u32>, tag: u32, iova: u64) -> Self {
        IotlbKey {
            source,
            pasid,
            tag,
            page: iova >> PAGE_SHIFT,
        }
    }
}

/// A cached translation: one 4 KiB page of a leaf.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct IotlbEntry {
    /// Physical (output) address of the 4 KiB page; the low 12 bits are ignored.
    pub pa: u64,
    /// log2 of the size of the leaf the page belongs to (12 for a 4 KiB page, 21 for
    /// 2 MiB, ...), so that invalidating any part of the leaf removes the page.
    pub size_shift: u8,
    /// What the translation grants.
    pub perms: Perms,
}

impl IotlbEntry {
    /// The 4 KiB piece holding `iova` of the leaf mapping the `1 << size_shift` bytes
    /// around it (naturally aligned) to `leaf_pa`.
    ///
    /// ```
    /// # use viommu::{iotlb::IotlbEntry, Perms};
    /// let e = IotlbEntry::piece_of_leaf(0x4000_0000, 30, 0x1234_5678, Perms::READ);
    /// assert_eq!((e.pa, e.size_shift), (0x5234_5000, 30));
    /// ```
    pub const fn piece_of_leaf(leaf_pa: u64, size_shift: u8, iova: u64, perms: Perms) -> Self {
        let in_leaf = iova & (low_mask(size_shift as u32) & !low_mask(PAGE_SHIFT));
        IotlbEntry {
            pa: (leaf_pa & !low_mask(size_shift as u32)) | in_leaf,
            size_shift,
            perms,
        }
    }

    /// The output address of `iova` (in this entry's page).
    #[inline]
    pub const fn translate(&self, iova: u64) -> u64 {
        (self.pa & !low_mask(PAGE_SHIFT)) | (iova & low_mask(PAGE_SHIFT))
    }
}

const fn low_mask(bits: u32) -> u64 {
    if bits >= 64 {
        u64::MAX
    } else {
        (1u64 << bits) - 1
    }
}

/// A range of input pages, for range invalidations.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PageRange {
    first: u64,
    last: u64,
}

impl PageRange {
    /// Every page.
    pub const ALL: PageRange = PageRange {
        first: 0,
        last: u64::MAX,
    };

    /// `count` pages from page `first` (at least one; clamped at the top).
    pub const fn pages(first: u64, count: u64) -> Self {
        let count = if count == 0 { 1 } else { count };
        PageRange {
            first,
            last: first.saturating_add(count - 1),
        }
    }

    /// The pages that the `len` bytes at `addr` touch (at least the page of `addr`):
    /// an SMMU range command's `(NUM + 1) << SCALE` granules, a device-TLB size.
    ///
    /// ```
    /// # use viommu::iotlb::PageRange;
    /// assert_eq!(PageRange::bytes(0x1fff, 2), PageRange::pages(1, 2));
    /// ```
    pub const fn bytes(addr: u64, len: u64) -> Self {
        let last = if len == 0 {
            addr
        } else {
            addr.saturating_add(len - 1)
        };
        PageRange {
            first: addr >> PAGE_SHIFT,
            last: last >> PAGE_SHIFT,
        }
    }

    /// The naturally aligned block of `1 << order` pages holding `addr`: a VT-d
    /// page-selective invalidation's ADDR and AM.
    ///
    /// ```
    /// # use viommu::iotlb::PageRange;
    /// assert_eq!(PageRange::aligned(0x12_3000, 2), PageRange::pages(0x120, 4));
    /// ```
    pub const fn aligned(addr: u64, order: u32) -> Self {
        let span = low_mask(order);
        let first = (addr >> PAGE_SHIFT) & !span;
        PageRange {
            first,
            last: first | span,
        }
    }

    /// The first page.
    pub const fn first(&self) -> u64 {
        self.first
    }

    /// The last page (inclusive).
    pub const fn last(&self) -> u64 {
        self.last
    }

    /// Whether the leaf of `1 << size_shift` bytes holding `page` overlaps the range.
    #[inline]
    pub const fn meets_leaf(&self, page: u64, size_shift: u8) -> bool {
        let span = low_mask((size_shift as u32).saturating_sub(PAGE_SHIFT));
        let leaf_first = page & !span;
        let leaf_last = leaf_first | span;
        leaf_first <= self.last && self.first <= leaf_last
    }
}

/// Which PASIDs an invalidation selects.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum PasidMatch {
    /// Entries with or without a PASID.
    #[default]
    Any,
    /// Entries of requests without a PASID.
    Without,
    /// Entries of this PASID / SubstreamID.
    Is(u32),
}

/// What an invalidation removes: the entries that match on every field.
///
/// ```
/// use viommu::iotlb::{IotlbKey, PageRange, Selector};
/// // SMMU TLBI_NH_VAA: every ASID of VMID 3, pages 0x10..=0x13.
/// let sel = Selector::ALL.tag_masked(3 << 16, 0xffff_0000).pages(PageRange::pages(0x10, 4));
/// assert!(sel.matches(&IotlbKey::new(9, None, 3 << 16 | 5, 0x13_000), 12));
/// assert!(!sel.matches(&IotlbKey::new(9, None, 4 << 16 | 5, 0x13_000), 12));
/// // A 2 MiB leaf cached for page 0x100 meets the range.
/// assert!(sel.matches(&IotlbKey::new(9, None, 3 << 16, 0x100_000), 21));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Selector {
    source: u32,
    source_mask: u32,
    tag: u32,
    tag_mask: u32,
    pasid: PasidMatch,
    pages: PageRange,
}

impl Selector {
    /// Every entry.
    pub const ALL: Selector = Selector {
        source: 0,
        source_mask: 0,
        tag: 0,
        tag_mask: 0,
        pasid: PasidMatch::Any,
        pages: PageRange::ALL,
    };

    /// Only entries of requester `source`.
    pub const fn source(self, source: u32) -> Self {
        self.source_block(source, 0)
    }

    /// Only entries of the `1 << low_bits` requesters that share `source`'s other bits
    /// (VT-d's function mask, SMMU CFGI_STE_RANGE; 32 selects every source).
    pub const fn source_block(mut self, source: u32, low_bits: u32) -> Self {
        self.source_mask = if low_bits >= 32 {
            0
        } else {
            u32::MAX << low_bits
        };
        self.source = source & self.source_mask;
        self
    }

    /// Only entries tagged `tag`.
    pub const fn tag(self, tag: u32) -> Self {
        self.tag_masked(tag, u32::MAX)
    }

    /// Only entries whose tag equals `tag` in the bits of `mask`.
    pub const fn tag_masked(mut self, tag: u32, mask: u32) -> Self {
        self.tag = tag & mask;
        self.tag_mask = mask;
        self
    }

    /// Only entries of these PASIDs.
    pub const fn pasid(mut self, pasid: PasidMatch) -> Self {
        self.pasid = pasid;
        self
    }

    /// Only entries whose leaf overlaps `pages`.
    pub const fn pages(mut self, pages: PageRange) -> Self {
        self.pages = pages;
        self
    }

    /// Whether entries of requester `source` with `pasid` may be selected (ignoring tags
    /// and pages): which devices' own caches an invalidation concerns.
    pub const fn selects_device(&self, source: u32, pasid: Option<u32>) -> bool {
        source & self.source_mask == self.source
            && match (self.pasid, pasid) {
                (PasidMatch::Any, _) | (PasidMatch::Without, None) => true,
                (PasidMatch::Is(p), Some(q)) => p == q,
                _ => false,
            }
    }

    /// The input pages selected.
    pub const fn page_range(&self) -> PageRange {
        self.pages
    }

    /// Whether the entry cached under `key`, of a leaf of `1 << size_shift` bytes, is
    /// selected.
    pub const fn matches(&self, key: &IotlbKey, size_shift: u8) -> bool {
        key.source & self.source_mask == self.source
            && key.tag & self.tag_mask == self.tag
            && match (self.pasid, key.pasid) {
                (PasidMatch::Any, _) | (PasidMatch::Without, None) => true,
                (PasidMatch::Is(p), Some(q)) => p == q,
                _ => false,
            }
            && self.pages.meets_leaf(key.page, size_shift)
    }
}

/// Taken by [`Iotlb::begin_fill`] before a walk, consumed by [`Iotlb::insert`] after it:
/// the entry is cached only if no invalidation started in between.
#[must_use = "a fill ticket is consumed by `Iotlb::insert` after the walk"]
#[derive(Debug)]
pub struct FillTicket {
    generation: u64,
    owner: usize,
}

// The slot's `meta` word: state, PASID and what the entry grants.
const STATE: u64 = 0b11;
const EMPTY: u64 = 0;
const PENDING: u64 = 1;
const VALID: u64 = 2;
const HAS_PASID: u64 = 1 << 2;
const SIZE_SHIFT: u32 = 3; // 6 bits
const PERMS_SHIFT: u32 = 9; // 8 bits
const PASID_SHIFT: u32 = 32;
const KEY_BITS: u64 = HAS_PASID | (u32::MAX as u64) << PASID_SHIFT;

/// One entry: a seqlock-protected record. `seq` is even when stable and odd while a
/// writer (an insert or an invalidation) holds the slot.
#[repr(align(64))]
struct Slot {
    seq: AtomicU64,
    /// `source << 32 | tag`.
    ids: AtomicU64,
    page: AtomicU64,
    /// State, PASID, leaf size and permissions (the constants above).
    meta: AtomicU64,
    pa: AtomicU64,
}

/// A consistent copy of a slot's fields.
#[derive(Clone, Copy)]
struct Record {
    ids: u64,
    page: u64,
    meta: u64,
    pa: u64,
}

impl Record {
    fn key(&self) -> IotlbKey {
        IotlbKey {
            source: (self.ids >> 32) as u32,
            tag: self.ids as u32,
            pasid: (self.meta & HAS_PASID != 0).then_some((self.meta >> PASID_SHIFT) as u32),
            page: self.page,
        }
    }

    #[inline(always)]
    fn entry(&self) -> IotlbEntry {
        IotlbEntry {
            pa: self.pa,
            size_shift: ((self.meta >> SIZE_SHIFT) & 0x3f) as u8,
            perms: Perms::from_bits_truncate((self.meta >> PERMS_SHIFT) as u8),
        }
    }
}

impl Slot {
    fn new() -> Self {
        Slot {
            seq: AtomicU64::new(0),
            ids: AtomicU64::new(0),
            page: AtomicU64::new(0),
            meta: AtomicU64::new(EMPTY),
            pa: AtomicU64::new(0),
        }
    }

    /// The slot's fields and the (even) sequence they were read at, or `None` if a
    /// writer held the slot or changed it meanwhile (Boehm's seqlock reader).
    #[inline(always)]
    fn read(&self) -> Option<(u64, Record)> {
        let seq = self.seq.load(Ordering::Acquire);
        if seq & 1 != 0 {
            return None;
        }
        let rec = Record {
            ids: self.ids.load(Ordering::Relaxed),
            page: self.page.load(Ordering::Relaxed),
            meta: self.meta.load(Ordering::Relaxed),
            pa: self.pa.load(Ordering::Relaxed),
        };
        fence(Ordering::Acquire);
        (self.seq.load(Ordering::Relaxed) == seq).then_some((seq, rec))
    }

    /// Takes the slot's lock bit if the sequence is still `seq` (even). A release fence
    /// then orders the odd sequence before the writer's field stores, so a reader that
    /// sees any of them also sees the sequence move.
    #[inline]
    fn lock(&self, seq: u64) -> bool {
        let locked = self
            .seq
            .compare_exchange(seq, seq + 1, Ordering::Acquire, Ordering::Relaxed)
            .is_ok();
        if locked {
            fence(Ordering::Release);
        }
        locked
    }

    /// Releases the lock taken at `seq`.
    #[inline]
    fn unlock(&self, seq: u64) {
        self.seq.store(seq + 2, Ordering::Release);
    }

    /// Empties the slot if its sequence is still `seq` (even); whether it did.
    fn clear(&self, seq: u64) -> bool {
        if !self.lock(seq) {
            return false;
        }
        self.meta.store(EMPTY, Ordering::Relaxed);
        self.unlock(seq);
        true
    }
}

/// A concurrent translation cache with lock-free lookups; see the [module
/// documentation](self) for its shape, its coherence protocol and how the guest's
/// invalidation commands map onto it.
pub struct Iotlb {
    slots: Box<[Slot]>,
    mask: u64,
    /// Incremented by every invalidation before it scans (see "Coherence").
    generation: AtomicU64,
}

impl fmt::Debug for Iotlb {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Iotlb")
            .field("capacity", &self.capacity())
            .field("generation", &self.generation.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

/// The largest capacity [`Iotlb::new`] gives (64 Mi entries, 4 GiB of slots).
pub const MAX_CAPACITY: usize = 1 << 26;

impl Iotlb {
    /// An empty cache of `capacity` entries, rounded up to a power of two (at least 1,
    /// at most [`MAX_CAPACITY`]); each takes 64 bytes.
    ///
    /// ```
    /// # use viommu::iotlb::Iotlb;
    /// assert_eq!(Iotlb::new(1000).capacity(), 1024);
    /// ```
    pub fn new(capacity: usize) -> Self {
        let capacity = capacity.clamp(1, MAX_CAPACITY).next_power_of_two();
        Iotlb {
            slots: (0..capacity).map(|_| Slot::new()).collect(),
            mask: capacity as u64 - 1,
            generation: AtomicU64::new(0),
        }
    }

    /// The number of entries it can hold.
    pub fn capacity(&self) -> usize {
        self.slots.len()
    }

    /// The slot of a key: its page, offset by a hash of its requester and PASID (not
    /// its tag, so that [`Iotlb::lookup_untagged`] finds it without the device's
    /// configuration).
    #[inline(always)]
    fn slot(&self, ids: u64, pasid_bits: u64, page: u64) -> &Slot {
        let context =
            ((ids >> 32) ^ pasid_bits.rotate_left(29)).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        &self.slots[(page.wrapping_add(context >> 32) & self.mask) as usize]
    }

    /// The cached translation of the page holding `iova` for requests from `source`
    /// with `pasid`, whatever its tag, with that tag: the translation path's lookup,
    /// which needs no configuration. A device has one configuration (one tag) at a
    /// time, and every change of it comes with an invalidation of its entries, so an
    /// entry found here is current. Lock-free, as [`Iotlb::lookup`].
    #[inline]
    pub fn lookup_untagged(
        &self,
        source: u32,
        pasid: Option<u32>,
        iova: u64,
    ) -> Option<(u32, IotlbEntry)> {
        let (page, pasid_bits) = (iova >> PAGE_SHIFT, pasid_bits(pasid));
        let ids = u64::from(source) << 32;
        let (_, rec) = self.slot(ids, pasid_bits, page).read()?;
        (rec.meta & STATE == VALID
            && rec.ids >> 32 == u64::from(source)
            && rec.page == page
            && rec.meta & KEY_BITS == pasid_bits)
            .then(|| (rec.ids as u32, rec.entry()))
    }

    /// The cached translation of `key`, if there is one. Lock-free: it writes nothing
    /// and never waits; a slot being written reads as a miss.
    #[inline]
    pub fn lookup(&self, key: &IotlbKey) -> Option<IotlbEntry> {
        let (ids, pasid_bits) = (ids(key), pasid_bits(key.pasid));
        let (_, rec) = self.slot(ids, pasid_bits, key.page).read()?;
        (rec.meta & STATE == VALID
            && rec.ids == ids
            && rec.page == key.page
            && rec.meta & KEY_BITS == pasid_bits)
            .then(|| rec.entry())
    }

    /// Starts a fill: call before reading the device's configuration and walking its
    /// tables, and pass the ticket to [`Iotlb::insert`] with the result.
    #[inline]
    pub fn begin_fill(&self) -> FillTicket {
        FillTicket {
            generation: self.generation.load(Ordering::Acquire),
            owner: self as *const Iotlb as usize,
        }
    }

    /// Whether no invalidation started since `ticket` was taken, after a `SeqCst` fence
    /// (the pairing of [`Iotlb::withdraw_fills`]): for state a fill keeps besides the
    /// IOTLB (a unit's configuration cache), which it must drop again when this is
    /// false.
    pub fn ticket_current(&self, ticket: &FillTicket) -> bool {
        fence(Ordering::SeqCst);
        ticket.owner == self as *const Iotlb as usize
            && self.generation.load(Ordering::Relaxed) == ticket.generation
    }

    /// Makes every fill in flight fail (its ticket is no longer current), removing no
    /// entry: the first step of a configuration invalidation, before it drops the
    /// cached configurations (see [`crate::unit`]).
    pub fn withdraw_fills(&self) {
        self.generation.fetch_add(1, Ordering::Release);
        fence(Ordering::SeqCst);
    }

    /// Caches `entry` for `key`, walked under `ticket`, evicting whatever its slot held.
    /// Returns whether it is cached: not if an invalidation started since
    /// [`Iotlb::begin_fill`] (the entry may be stale), if another writer held the slot,
    /// or if the ticket is another cache's. Either way the walk's result is good for the
    /// request that made it.
    pub fn insert(&self, ticket: FillTicket, key: &IotlbKey, entry: IotlbEntry) -> bool {
        if ticket.owner != self as *const Iotlb as usize {
            return false;
        }
        let (ids, pasid_bits) = (ids(key), pasid_bits(key.pasid));
        let size_shift = u64::from(entry.size_shift.clamp(PAGE_SHIFT as u8, 63));
        let meta =
            pasid_bits | size_shift << SIZE_SHIFT | u64::from(entry.perms.bits()) << PERMS_SHIFT;
        let slot = self.slot(ids, pasid_bits, key.page);
        let seq = slot.seq.load(Ordering::Relaxed);
        if seq & 1 != 0 || !slot.lock(seq) {
            return false;
        }
        // 1. The entry, pending: no lookup returns it.
        slot.ids.store(ids, Ordering::Relaxed);
        slot.page.store(key.page, Ordering::Relaxed);
        slot.pa
            .store(entry.pa & !low_mask(PAGE_SHIFT), Ordering::Relaxed);
        slot.meta.store(meta | PENDING, Ordering::Relaxed);
        slot.unlock(seq);
        let pending = seq + 2;
        // 2. Did an invalidation start since the walk began? The fence pairs with the
        // one in `invalidate`: either we see its increment, or its scan sees our entry.
        fence(Ordering::SeqCst);
        if self.generation.load(Ordering::Relaxed) != ticket.generation {
            slot.clear(pending);
            return false;
        }
        // 3. Publish, unless someone (an invalidation) touched the slot since step 1.
        if !slot.lock(pending) {
            return false;
        }
        slot.meta.store(meta | VALID, Ordering::Relaxed);
        slot.unlock(pending);
        true
    }

    /// Removes every entry (valid or pending) that `sel` selects; returns how many
    /// valid entries it removed. When it returns, no lookup that starts afterwards finds
    /// any of them, nor an entry walked before it began (see "Coherence").
    pub fn invalidate(&self, sel: &Selector) -> usize {
        self.generation.fetch_add(1, Ordering::Release);
        // Pairs with the fence in `insert` (step 2).
        fence(Ordering::SeqCst);
        let mut removed = 0;
        for slot in self.slots.iter() {
            let mut round = 0;
            loop {
                let Some((seq, rec)) = slot.read() else {
                    // A writer holds the slot for a few stores: wait it out.
                    spin(&mut round);
                    continue;
                };
                let state = rec.meta & STATE;
                if state == EMPTY || !sel.matches(&rec.key(), rec.entry().size_shift) {
                    break;
                }
                if slot.clear(seq) {
                    removed += usize::from(state == VALID);
                    break;
                }
            }
        }
        removed
    }

    /// Removes every entry: VT-d global context-cache and IOTLB invalidations, SMMU
    /// CFGI_ALL and TLBI_NSNH_ALL.
    pub fn invalidate_all(&self) -> usize {
        self.invalidate(&Selector::ALL)
    }

    /// Removes the entries of requester `source`: SMMU CFGI_STE and CFGI_CD_ALL.
    pub fn invalidate_source(&self, source: u32) -> usize {
        self.invalidate(&Selector::ALL.source(source))
    }

    /// Removes the entries of the `1 << low_bits` requesters sharing `source`'s other
    /// bits: VT-d device-selective context-cache invalidation with a function mask,
    /// SMMU CFGI_STE_RANGE (`low_bits` = Range + 1).
    pub fn invalidate_source_block(&self, source: u32, low_bits: u32) -> usize {
        self.invalidate(&Selector::ALL.source_block(source, low_bits))
    }

    /// Removes the entries of requester `source` with PASID / SubstreamID `pasid`:
    /// SMMU CFGI_CD.
    pub fn invalidate_source_pasid(&self, source: u32, pasid: u32) -> usize {
        self.invalidate(&Selector::ALL.source(source).pasid(PasidMatch::Is(pasid)))
    }

    /// Removes the entries of requester `source` and `pasid` whose leaf meets `pages`:
    /// VT-d (PASID-based) device-TLB invalidations, SMMU ATC_INV.
    pub fn invalidate_source_range(
        &self,
        source: u32,
        pasid: PasidMatch,
        pages: PageRange,
    ) -> usize {
        self.invalidate(&Selector::ALL.source(source).pasid(pasid).pages(pages))
    }

    /// Removes the entries tagged `tag`: VT-d domain-selective invalidations, SMMU
    /// TLBI_NH_ASID.
    pub fn invalidate_tag(&self, tag: u32) -> usize {
        self.invalidate(&Selector::ALL.tag(tag))
    }

    /// Removes the entries whose tag equals `tag` in the bits of `mask`: SMMU
    /// TLBI_NH_ALL and TLBI_S12_VMALL (`vmid << 16`, `0xffff_0000`).
    pub fn invalidate_tag_masked(&self, tag: u32, mask: u32) -> usize {
        self.invalidate(&Selector::ALL.tag_masked(tag, mask))
    }

    /// Removes the entries tagged `tag` whose leaf meets `pages`: VT-d page-selective
    /// IOTLB invalidation, SMMU TLBI_NH_VA.
    pub fn invalidate_tag_range(&self, tag: u32, pages: PageRange) -> usize {
        self.invalidate(&Selector::ALL.tag(tag).pages(pages))
    }

    /// Removes the entries tagged `tag` with PASID `pasid`: VT-d PASID-based IOTLB
    /// (G=2) and PASID-cache invalidations.
    pub fn invalidate_tag_pasid(&self, tag: u32, pasid: u32) -> usize {
        self.invalidate(&Selector::ALL.tag(tag).pasid(PasidMatch::Is(pasid)))
    }

    /// Removes the entries tagged `tag` with PASID `pasid` whose leaf meets `pages`:
    /// VT-d PASID-based IOTLB invalidation, G=3.
    pub fn invalidate_tag_pasid_range(&self, tag: u32, pasid: u32, pages: PageRange) -> usize {
        self.invalidate(
            &Selector::ALL
                .tag(tag)
                .pasid(PasidMatch::Is(pasid))
                .pages(pages),
        )
    }

    /// The valid entries, in slot order (a snapshot that may be stale by the time it
    /// returns; for tests and debugging).
    pub fn entries(&self) -> Vec<(IotlbKey, IotlbEntry)> {
        let mut out = Vec::new();
        for slot in self.slots.iter() {
            let mut round = 0;
            let rec = loop {
                match slot.read() {
                    Some((_, rec)) => break rec,
                    None => spin(&mut round),
                }
            };
            if rec.meta & STATE == VALID {
                out.push((rec.key(), rec.entry()));
            }
        }
        out
    }

    /// The number of valid entries (a snapshot, as [`Iotlb::entries`]).
    pub fn len(&self) -> usize {
        self.entries().len()
    }

    /// Whether no entry is valid (a snapshot).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[inline(always)]
fn ids(key: &IotlbKey) -> u64 {
    u64::from(key.source) << 32 | u64::from(key.tag)
}

#[inline(always)]
fn pasid_bits(pasid: Option<u32>) -> u64 {
    match pasid {
        Some(p) => HAS_PASID | u64::from(p) << PASID_SHIFT,
        None => 0,
    }
}
