//! The slow path: every allocated and reserved range, in a B+ tree augmented with the
//! free gaps between them.
//!
//! # Structure
//!
//! Leaves hold up to [`LEAF_CAP`] ranges sorted by first pfn, 16 bytes each (first pfn,
//! last pfn with the range's kind in its top bits). Inner nodes hold up to [`INNER_CAP`]
//! children, and next to each child its [`Summary`]: the child's first and last pfn and
//! the largest length and largest alignment score (see `gap.rs`) of the free gaps
//! *inside* the child. A gap between two neighbouring children is computed from their
//! summaries where it is needed, so no node depends on another's contents and an update
//! only touches the summaries on its own root path. Two sentinel ranges,
//! `0..=start_pfn-1` and `max_pfn+1`, make every free gap lie between two ranges.
//!
//! Nodes live in two arenas indexed by `u32` and are never shared, so the tree needs no
//! `unsafe`; it sits behind one mutex (the per-CPU magazines keep it off the fast path).
//!
//! # Why the allocation search is O(log n) for any fragmentation and any limit
//!
//! The search visits items right to left (highest addresses first), so the first fit
//! found is the highest. At an inner node, a child whose summary says "no gap fits" is
//! skipped in O(1), and so is one that starts above the limit. A child lying entirely at
//! or below the limit whose summary says "a gap fits" is entered and is *guaranteed* to
//! yield a placement, because the score/length test of `gap.rs` is exact, not a
//! heuristic. Only a child that straddles the limit can be entered and come back empty,
//! and at most one child per level straddles it. So a search enters at most two nodes
//! per level (one on the limit's path, one guaranteed descent) and scans each in
//! O(B): at most `2 * (height + 1)` nodes, `height <= log_{B/2}(n)`. Failing searches
//! are as cheap, so no "last failed size" hint is needed and none can go stale.
//!
//! In each node the scan starts at the limit (found by binary search), and an aligned
//! allocation may start it lower still: the hints of `hint.rs` remember, per limit,
//! what earlier searches learned about the gaps above the last placement, so that a
//! top-down fill finds its next place next to the last one (or in a hole it knows)
//! instead of scanning every full child between the limit and the free space. They
//! only narrow a search whose answer they prove; the placement is the same.
//!
//! Insertion splits full nodes on the way down; a full leaf first lends to a sibling
//! with room, all but one of the sibling's free slots, so that a top-down (or
//! bottom-up) fill leaves nearly full leaves behind it. Removal merges or rebalances
//! minimal nodes on the way down. Both move items in place. Every node but the root
//! is at least half full. Summaries on the path are updated in O(1) per level when the
//! maxima can only grow (a removal merges two gaps) or the gap an insertion splits
//! cannot have held them, and recomputed in O(B) otherwise; either way an update is
//! O(B log n), and the invariant checker in the tests compares every stored summary
//! with a fresh one. Restructuring a node's children changes neither its gaps nor its
//! ends, so its own summary is still updated from the old one.
//!
//! # Memory
//!
//! A leaf is `4 + 16 * 32` bytes rounded to 520; an inner node `4 + 40 * 16` rounded to
//! 648 (one inner entry per leaf or inner child). At the worst fill (half-full nodes)
//! that is about 36 bytes per range. Measured (`per_range_memory_stays_within_budget`):
//! about 20 bytes per range after top-down filling, 24-26 after random churn, 35 after
//! freeing three ranges in four in address order; arena growth adds at most an eighth.

use std::cell::Cell;

use crate::gap::{self, Request};
use crate::hint::{Hints, Plan, Region};

/// Ranges per leaf.
pub(crate) const LEAF_CAP: usize = 32;
/// Children per inner node.
pub(crate) const INNER_CAP: usize = 16;

/// Range kind: a reservation (never handed out, merged with neighbours).
pub(crate) const RESERVED: u8 = 1;
/// Range kind: an allocation parked in a per-CPU cache (tracked in checked domains only).
pub(crate) const CACHED: u8 = 2;

/// Where the kind bits live in an entry's `hi` word; pfns stay below 2^53.
const FLAG_SHIFT: u32 = 60;
const HI_MASK: u64 = (1 << FLAG_SHIFT) - 1;

/// One allocated or reserved range.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Range {
    /// First pfn.
    pub(crate) lo: u64,
    /// Last pfn.
    pub(crate) hi: u64,
    /// [`RESERVED`] and/or [`CACHED`].
    pub(crate) flags: u8,
}

impl Range {
    pub(crate) fn is_reserved(&self) -> bool {
        self.flags & RESERVED != 0
    }

    pub(crate) fn is_cached(&self) -> bool {
        self.flags & CACHED != 0
    }

    pub(crate) fn pages(&self) -> u64 {
        self.hi - self.lo + 1
    }
}

/// A leaf entry: a [`Range`] in 16 bytes.
#[derive(Debug, Clone, Copy, Default)]
struct Entry {
    lo: u64,
    tagged_hi: u64,
}

impl Entry {
    fn new(r: Range) -> Self {
        Entry {
            lo: r.lo,
            tagged_hi: r.hi | (u64::from(r.flags) << FLAG_SHIFT),
        }
    }

    fn range(&self) -> Range {
        Range {
            lo: self.lo,
            hi: self.tagged_hi & HI_MASK,
            flags: (self.tagged_hi >> FLAG_SHIFT) as u8,
        }
    }
}

/// What a parent knows about one child subtree.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Summary {
    /// First pfn of the subtree's first range.
    lo: u64,
    /// Last pfn of the subtree's last range.
    hi: u64,
    /// Largest free gap strictly inside the subtree, in pages.
    gap: u64,
    /// Largest alignment score of those gaps (`gap::score`).
    score: u64,
}

impl Summary {
    /// Takes the gap `lo..=hi` (empty if `lo > hi`) into the maxima.
    fn absorb(&mut self, lo: u64, hi: u64) {
        if lo > hi {
            return;
        }
        let len = hi + 1 - lo;
        self.gap = self.gap.max(len);
        // See `Node::summary` for why shorter gaps cannot hold the top score.
        if len >= worth_scoring(self.gap) {
            self.score = self.score.max(gap::score(lo, hi));
        }
    }

    /// Whether the gap `lo..=hi` surely holds neither maximum, so that shrinking or
    /// splitting it leaves the maxima as they are.
    fn below_max(&self, lo: u64, hi: u64) -> bool {
        if lo > hi {
            return true;
        }
        let len = hi + 1 - lo;
        len < self.gap && (len < worth_scoring(self.gap) || gap::score(lo, hi) < self.score)
    }
}

/// The shortest gap whose score can be the largest among gaps at most `longest` long:
/// a gap of length L has alignment order ilog2(L) - 1 or ilog2(L), and the longest gap
/// has order at least ilog2(longest) - 1.
fn worth_scoring(longest: u64) -> u64 {
    if longest == 0 {
        return u64::MAX;
    }
    1 << longest.ilog2().saturating_sub(1)
}

/// An inner-node entry.
#[derive(Debug, Clone, Copy, Default)]
struct Child {
    id: u32,
    sum: Summary,
}

/// What leaf and inner entries have in common, so node shuffling and summaries are
/// written once.
trait Item: Copy + Default {
    /// First pfn covered.
    fn first(&self) -> u64;
    /// Last pfn covered.
    fn last(&self) -> u64;
    /// Largest gap length and score inside the item (none for a single range).
    fn inside(&self) -> (u64, u64);
}

impl Item for Entry {
    fn first(&self) -> u64 {
        self.lo
    }
    fn last(&self) -> u64 {
        self.tagged_hi & HI_MASK
    }
    fn inside(&self) -> (u64, u64) {
        (0, 0)
    }
}

impl Item for Child {
    fn first(&self) -> u64 {
        self.sum.lo
    }
    fn last(&self) -> u64 {
        self.sum.hi
    }
    fn inside(&self) -> (u64, u64) {
        (self.sum.gap, self.sum.score)
    }
}

/// A sorted, bounded array of items.
#[derive(Debug, Clone)]
struct Node<E, const CAP: usize> {
    len: u32,
    items: [E; CAP],
}

type Leaf = Node<Entry, LEAF_CAP>;
type Inner = Node<Child, INNER_CAP>;

impl<E: Item, const CAP: usize> Node<E, CAP> {
    /// Fewest items a non-root node holds.
    const MIN: usize = CAP / 2;

    fn new() -> Self {
        Node {
            len: 0,
            items: [E::default(); CAP],
        }
    }

    fn len(&self) -> usize {
        self.len as usize
    }

    fn items(&self) -> &[E] {
        &self.items[..self.len()]
    }

    fn insert(&mut self, at: usize, e: E) {
        let len = self.len();
        debug_assert!(len < CAP && at <= len);
        self.items.copy_within(at..len, at + 1);
        self.items[at] = e;
        self.len += 1;
    }

    fn remove(&mut self, at: usize) -> E {
        let len = self.len();
        let e = self.items[at];
        self.items.copy_within(at + 1..len, at);
        self.len -= 1;
        e
    }

    /// Moves the items from `at` on into a new node.
    fn split_off(&mut self, at: usize) -> Self {
        let len = self.len();
        let mut right = Self::new();
        right.items[..len - at].copy_from_slice(&self.items[at..len]);
        right.len = (len - at) as u32;
        self.len = at as u32;
        right
    }

    /// Appends all of `other`'s items (which all lie above this node's).
    fn append(&mut self, other: &Self) {
        let (len, n) = (self.len(), other.len());
        debug_assert!(len + n <= CAP);
        self.items[len..len + n].copy_from_slice(other.items());
        self.len += n as u32;
    }

    /// Index of the item to descend into for `key`: the last one starting at or below
    /// it (0 if none does).
    fn slot_for(&self, key: u64) -> usize {
        self.items()
            .partition_point(|e| e.first() <= key)
            .saturating_sub(1)
    }

    fn summary(&self) -> Summary {
        let items = self.items();
        let (Some(first), Some(last)) = (items.first(), items.last()) else {
            return Summary::default();
        };
        let (mut gap, mut score) = (0, 0);
        for e in items {
            let (g, s) = e.inside();
            gap = gap.max(g);
            score = score.max(s);
        }
        let mut prev = first.last();
        for e in &items[1..] {
            gap = gap.max(e.first() - prev - 1);
            prev = e.last();
        }
        // Scores cost a few dependent instructions each, so compute them only for gaps
        // that can hold the maximum (see `worth_scoring`).
        let worth = worth_scoring(gap);
        let mut prev = first.last();
        for e in &items[1..] {
            if e.first() - prev > worth {
                score = score.max(gap::score(prev + 1, e.first() - 1));
            }
            prev = e.last();
        }
        Summary {
            lo: first.first(),
            hi: last.last(),
            gap,
            score,
        }
    }
}

/// How many of `items` start at or below `limit`. A limit above the whole node (the
/// common case high in the tree) is answered without the binary search, whose branches
/// a predictor cannot learn.
#[inline]
fn below_limit<E: Item>(items: &[E], limit: u64) -> usize {
    match items.last() {
        Some(last) if last.first() <= limit => items.len(),
        _ => items.partition_point(|e| e.first() <= limit),
    }
}

/// Nodes of one kind, recycled through a free list.
#[derive(Debug)]
struct Arena<T> {
    nodes: Vec<T>,
    free: Vec<u32>,
}

impl<T> Arena<T> {
    fn new() -> Self {
        Arena {
            nodes: Vec::new(),
            free: Vec::new(),
        }
    }

    fn alloc(&mut self, node: T) -> u32 {
        if let Some(id) = self.free.pop() {
            self.nodes[id as usize] = node;
            return id;
        }
        if self.nodes.len() == self.nodes.capacity() {
            // Grow by an eighth rather than doubling: still amortised O(1), and the
            // unused capacity stays a small part of the per-range memory.
            self.nodes.reserve_exact(self.nodes.len() / 8 + 4);
        }
        let id = u32::try_from(self.nodes.len()).expect("range tree exceeds 2^32 nodes");
        self.nodes.push(node);
        id
    }

    fn release(&mut self, id: u32) {
        self.free.push(id);
    }

    fn get(&self, id: u32) -> &T {
        &self.nodes[id as usize]
    }

    fn get_mut(&mut self, id: u32) -> &mut T {
        &mut self.nodes[id as usize]
    }

    fn in_use(&self) -> usize {
        self.nodes.len() - self.free.len()
    }

    fn bytes_reserved(&self) -> usize {
        self.nodes.capacity() * size_of::<T>() + self.free.capacity() * size_of::<u32>()
    }
}

/// Two distinct nodes of an arena, both writable.
fn two_mut<T>(arena: &mut Arena<T>, a: u32, b: u32) -> (&mut T, &mut T) {
    let (a, b) = (a as usize, b as usize);
    assert_ne!(a, b);
    if a < b {
        let (x, y) = arena.nodes.split_at_mut(b);
        (&mut x[a], &mut y[0])
    } else {
        let (x, y) = arena.nodes.split_at_mut(a);
        (&mut y[0], &mut x[b])
    }
}

/// Moves items between neighbours `left` and `right`, in place, so that `left` holds
/// `left_len`.
fn balance_in<E: Item, const CAP: usize>(
    arena: &mut Arena<Node<E, CAP>>,
    left: u32,
    right: u32,
    left_len: usize,
) {
    let (l, r) = two_mut(arena, left, right);
    let (ln, rn) = (l.len(), r.len());
    debug_assert!(left_len <= CAP && ln + rn - left_len <= CAP);
    if ln > left_len {
        let k = ln - left_len;
        r.items.copy_within(..rn, k);
        r.items[..k].copy_from_slice(&l.items[left_len..ln]);
    } else {
        let k = left_len - ln;
        l.items[ln..left_len].copy_from_slice(&r.items[..k]);
        r.items.copy_within(k..rn, 0);
    }
    r.len = (ln + rn - left_len) as u32;
    l.len = left_len as u32;
}

fn merge_in<E: Item, const CAP: usize>(arena: &mut Arena<Node<E, CAP>>, left: u32, right: u32) {
    let (l, r) = two_mut(arena, left, right);
    l.append(r);
    arena.release(right);
}

fn split_in<E: Item, const CAP: usize>(arena: &mut Arena<Node<E, CAP>>, id: u32) -> u32 {
    let node = arena.get_mut(id);
    let half = node.len() / 2;
    let right = node.split_off(half);
    arena.alloc(right)
}

/// The range tree of one domain.
#[derive(Debug)]
pub(crate) struct RangeTree {
    leaves: Arena<Leaf>,
    inners: Arena<Inner>,
    root: u32,
    /// Levels above the leaves; 0 when the root is a leaf.
    height: u32,
    /// The allocatable window; ranges outside it are the two sentinels.
    first: u64,
    last: u64,
    allocations: u64,
    reservations: u64,
    /// What recent aligned allocations learned about the space below their limits.
    hints: Hints,
    /// Nodes entered by searches, for the O(log n) test.
    visits: Cell<u64>,
}

impl RangeTree {
    /// An empty tree over the window `first..=last` (`1 <= first <= last < 2^53 - 1`).
    pub(crate) fn new(first: u64, last: u64) -> Self {
        debug_assert!(1 <= first && first <= last && last < (1 << 53) - 1);
        let mut root = Leaf::new();
        for r in [(0, first - 1), (last + 1, last + 1)] {
            let len = root.len();
            root.insert(
                len,
                Entry::new(Range {
                    lo: r.0,
                    hi: r.1,
                    flags: RESERVED,
                }),
            );
        }
        let mut leaves = Arena::new();
        let root = leaves.alloc(root);
        RangeTree {
            leaves,
            inners: Arena::new(),
            root,
            height: 0,
            first,
            last,
            allocations: 0,
            reservations: 0,
            hints: Hints::default(),
            visits: Cell::new(0),
        }
    }

    /// Allocations in the tree.
    pub(crate) fn allocations(&self) -> u64 {
        self.allocations
    }

    /// Reserved ranges in the tree (after merging).
    #[cfg(test)]
    pub(crate) fn reservations(&self) -> u64 {
        self.reservations
    }

    /// Allocates `req` at the highest place whose last pfn is at or below `limit`.
    ///
    /// The placement is [`RangeTree::highest_fit`]'s; what the hints know (see
    /// `hint.rs`) only saves the search for it.
    pub(crate) fn alloc(&mut self, req: Request, limit: u64) -> Option<u64> {
        let limit = limit.min(self.last);
        let plan = self.hints.plan(req, limit);
        let mut found = Region::default();
        let lo = match plan {
            Plan::Hole { at, .. } => at,
            Plan::Below(top) => self.search(self.root, self.height, req, top, &mut found)?,
            Plan::Full => self.search(self.root, self.height, req, limit, &mut found)?,
        };
        self.insert(Range {
            lo,
            hi: lo + req.size() - 1,
            flags: 0,
        });
        self.hints.placed(req, limit, lo, plan, &found);
        Some(lo)
    }

    /// Where [`RangeTree::alloc`] would place `req`, without allocating (and without
    /// hints: the reference the tests compare hinted searches with).
    #[cfg(test)]
    pub(crate) fn highest_fit(&self, req: Request, limit: u64) -> Option<u64> {
        let mut scratch = Region::default();
        self.search(
            self.root,
            self.height,
            req,
            limit.min(self.last),
            &mut scratch,
        )
    }

    /// The highest placement of `req` ending at or below `limit` in subtree `id`.
    ///
    /// Only the children and items starting at or below the limit are looked at (found
    /// by binary search), right to left. `found` learns what the search passed over
    /// (gaps, cut at `limit`; subtrees by their summaries) and what the placement
    /// leaves of its gap below the limit, so that on success it describes every gap
    /// reaching above the placement's start (see `hint.rs`).
    fn search(
        &self,
        id: u32,
        level: u32,
        req: Request,
        limit: u64,
        found: &mut Region,
    ) -> Option<u64> {
        self.visits.set(self.visits.get() + 1);
        if level == 0 {
            let items = self.leaves.get(id).items();
            // Only the gaps before items[k] for k <= `end` can start at or below the
            // limit (the item before them must start there).
            let end = below_limit(items, limit).min(items.len() - 1);
            for k in (1..=end).rev() {
                let (lo, hi) = (items[k - 1].last() + 1, (items[k].lo - 1).min(limit));
                if lo > hi {
                    continue;
                }
                if let Some(x) = req.place(lo, hi, limit) {
                    found.keep(x + req.size(), hi);
                    return Some(x);
                }
                found.pass_gap(lo, hi);
            }
            return None;
        }
        let items = self.inners.get(id).items();
        // Children starting above the limit hold nothing below it.
        let end = below_limit(items, limit);
        for k in (0..end).rev() {
            let c = items[k];
            if let Some(next) = items.get(k + 1) {
                // The gap after child k, if it starts at or below the limit.
                let (lo, hi) = (c.sum.hi + 1, (next.sum.lo - 1).min(limit));
                if lo <= hi {
                    if let Some(x) = req.place(lo, hi, limit) {
                        found.keep(x + req.size(), hi);
                        return Some(x);
                    }
                    found.pass_gap(lo, hi);
                }
            }
            if req.fits(c.sum.gap, c.sum.score) {
                let got = self.search(c.id, level - 1, req, limit, found);
                // Below the limit the summary test is exact: entering must succeed.
                debug_assert!(got.is_some() || c.sum.hi > limit);
                if got.is_some() {
                    return got;
                }
            } else {
                found.pass_subtree(c.sum.score);
            }
        }
        None
    }

    /// The allocation or reservation containing `pfn` (never a sentinel).
    pub(crate) fn find(&self, pfn: u64) -> Option<Range> {
        let mut id = self.root;
        for _ in 0..self.height {
            let node = self.inners.get(id);
            id = node.items[node.slot_for(pfn)].id;
        }
        let items = self.leaves.get(id).items();
        let k = items.partition_point(|e| e.lo <= pfn);
        let r = items.get(k.checked_sub(1)?)?.range();
        (pfn <= r.hi && self.in_window(r)).then_some(r)
    }

    /// The range starting exactly at `lo`.
    pub(crate) fn find_exact(&self, lo: u64) -> Option<Range> {
        self.find(lo).filter(|r| r.lo == lo)
    }

    fn in_window(&self, r: Range) -> bool {
        r.lo >= self.first && r.hi <= self.last
    }

    /// Replaces the kind bits of the range starting at `lo`; returns the old range.
    pub(crate) fn set_flags(&mut self, lo: u64, flags: u8) -> Option<Range> {
        let mut id = self.root;
        for _ in 0..self.height {
            let node = self.inners.get(id);
            id = node.items[node.slot_for(lo)].id;
        }
        let leaf = self.leaves.get_mut(id);
        let k = leaf.items().binary_search_by_key(&lo, |e| e.lo).ok()?;
        let old = leaf.items[k].range();
        if !(old.lo >= self.first && old.hi <= self.last) {
            return None;
        }
        leaf.items[k] = Entry::new(Range { flags, ..old });
        Some(old)
    }

    /// Every range (not sentinel) overlapping `lo..=hi`, in order.
    pub(crate) fn overlapping(&self, lo: u64, hi: u64) -> Vec<Range> {
        let mut out = Vec::new();
        self.collect(self.root, self.height, lo, hi, &mut out);
        out.retain(|r| self.in_window(*r));
        out
    }

    fn collect(&self, id: u32, level: u32, lo: u64, hi: u64, out: &mut Vec<Range>) {
        if level == 0 {
            out.extend(
                self.leaves
                    .get(id)
                    .items()
                    .iter()
                    .map(Entry::range)
                    .filter(|r| r.hi >= lo && r.lo <= hi),
            );
            return;
        }
        for c in self.inners.get(id).items() {
            if c.sum.hi >= lo && c.sum.lo <= hi {
                self.collect(c.id, level - 1, lo, hi, out);
            }
        }
    }

    /// Reserves `lo..=hi` (inside the window), merging it with every reservation it
    /// overlaps or touches. Returns the first allocation in the way, changing nothing.
    pub(crate) fn reserve(&mut self, lo: u64, hi: u64) -> Result<(), Range> {
        let near = self.overlapping(lo.saturating_sub(1), hi + 1);
        if let Some(r) = near
            .iter()
            .find(|r| !r.is_reserved() && r.lo <= hi && r.hi >= lo)
        {
            return Err(*r);
        }
        // Merging reservations removes ranges: keep no hint across that.
        self.hints.clear();
        let (mut lo, mut hi) = (lo, hi);
        for r in near.iter().filter(|r| r.is_reserved()) {
            lo = lo.min(r.lo);
            hi = hi.max(r.hi);
            self.remove_found(*r);
        }
        self.insert(Range {
            lo,
            hi,
            flags: RESERVED,
        });
        Ok(())
    }

    /// Inserts a range that overlaps nothing in the tree.
    pub(crate) fn insert(&mut self, r: Range) {
        debug_assert!(r.lo <= r.hi && self.in_window(r));
        if self.node_is_full(self.root, self.height) {
            let sum = self.node_summary(self.root, self.height);
            let mut top = Inner::new();
            top.insert(0, Child { id: self.root, sum });
            self.root = self.inners.alloc(top);
            self.height += 1;
            self.split_child(self.root, 0, self.height - 1);
        }
        // Nothing reads the root's own summary (searches use its children's).
        self.insert_into(self.root, self.height, r, None);
        if r.is_reserved() {
            self.reservations += 1;
        } else {
            self.allocations += 1;
        }
    }

    /// Inserts `r` below node `id`, whose summary was `old`; returns its new summary
    /// (or nothing, for the root, which passes `None`).
    ///
    /// Summaries are updated in O(1) per level where possible: a new range splits one
    /// gap (or shrinks one at a node's edge), which changes the maxima only if that gap
    /// may have held them; otherwise the node is summarised afresh.
    fn insert_into(&mut self, id: u32, level: u32, r: Range, old: Option<Summary>) -> Summary {
        if level == 0 {
            let leaf = self.leaves.get_mut(id);
            let at = leaf.items().partition_point(|e| e.lo < r.lo);
            let n = leaf.len();
            debug_assert!(at == 0 || leaf.items[at - 1].last() < r.lo);
            debug_assert!(at == n || leaf.items[at].lo > r.hi);
            // The gap the new range splits, if it lies inside this leaf.
            let split =
                (at > 0 && at < n).then(|| (leaf.items[at - 1].last() + 1, leaf.items[at].lo - 1));
            leaf.insert(at, Entry::new(r));
            let Some(old) = old else {
                return Summary::default();
            };
            let mut s = old;
            match split {
                Some((lo, hi)) if old.below_max(lo, hi) => {}
                Some(_) => s = leaf.summary(),
                // A new first or last range: one new gap inside the leaf, next to it.
                None if n == 0 => s = leaf.summary(),
                None if at == 0 => {
                    s.lo = r.lo;
                    s.absorb(r.hi + 1, leaf.items[1].lo - 1);
                }
                None => {
                    s.hi = r.hi;
                    s.absorb(leaf.items[at - 1].last() + 1, r.lo - 1);
                }
            }
            return s;
        }
        let mut i = self.inners.get(id).slot_for(r.lo);
        let restructured = self.child_is_full(id, i, level - 1);
        if restructured {
            i = self.make_room(id, i, level - 1, r.lo);
        }
        let c = self.inners.get(id).items[i];
        let new = self.insert_into(c.id, level - 1, r, Some(c.sum));
        self.inners.get_mut(id).items[i].sum = new;
        // Restructuring children changes neither this node's gaps nor its ends, so the
        // update from `old` holds whether or not it happened.
        match old {
            None => Summary::default(),
            Some(old) => self.updated(id, i, old, c.sum, new),
        }
    }

    /// The new summary of inner node `id` (formerly `old`) after its child `i` changed
    /// from `was` to `now` and nothing else did.
    fn updated(&self, id: u32, i: usize, old: Summary, was: Summary, now: Summary) -> Summary {
        let node = self.inners.get(id);
        if now.gap < was.gap || now.score < was.score {
            return node.summary();
        }
        let mut s = old;
        s.gap = s.gap.max(now.gap);
        s.score = s.score.max(now.score);
        if now.lo != was.lo {
            if i == 0 {
                s.lo = now.lo;
            } else {
                let left = node.items[i - 1].sum.hi + 1;
                if now.lo > was.lo {
                    s.absorb(left, now.lo - 1);
                } else if !old.below_max(left, was.lo - 1) {
                    return node.summary();
                }
            }
        }
        if now.hi != was.hi {
            if i + 1 == node.len() {
                s.hi = now.hi;
            } else {
                let right = node.items[i + 1].sum.lo - 1;
                if now.hi < was.hi {
                    s.absorb(now.hi + 1, right);
                } else if !old.below_max(was.hi + 1, right) {
                    return node.summary();
                }
            }
        }
        s
    }

    /// Makes child `i` of `parent` non-full before an insert descends into it; returns
    /// the child to descend into afterwards.
    fn make_room(&mut self, parent: u32, i: usize, child_level: u32, key: u64) -> usize {
        if child_level == 0 {
            let n = self.inners.get(parent).len();
            for j in [i + 1, i.wrapping_sub(1)] {
                if j >= n {
                    continue;
                }
                let sib = self.inners.get(parent).items[j].id;
                let sib_len = self.leaves.get(sib).len();
                // With two free slots the sibling takes all but one, and the full
                // leaf keeps the rest (more than the minimum, since the sibling had at
                // least that): neither is full afterwards, and the leaf that receives a
                // top-down (or bottom-up) fill gets the most room, so that the leaves
                // it leaves behind end up nearly full.
                if sib_len <= LEAF_CAP - 2 {
                    let left_len = if j > i { sib_len + 1 } else { LEAF_CAP - 1 };
                    self.balance_children(parent, i.min(j), 0, left_len);
                    return self.inners.get(parent).slot_for(key);
                }
            }
        }
        self.split_child(parent, i, child_level);
        self.inners.get(parent).slot_for(key)
    }

    fn split_child(&mut self, parent: u32, i: usize, child_level: u32) {
        let child = self.inners.get(parent).items[i].id;
        let new = if child_level == 0 {
            split_in(&mut self.leaves, child)
        } else {
            split_in(&mut self.inners, child)
        };
        self.inners.get_mut(parent).insert(
            i + 1,
            Child {
                id: new,
                sum: Summary::default(),
            },
        );
        self.refresh(parent, i, child_level);
        self.refresh(parent, i + 1, child_level);
    }

    /// Removes `r`, which [`RangeTree::find`] just returned.
    pub(crate) fn remove_found(&mut self, r: Range) {
        debug_assert_eq!(self.find_exact(r.lo), Some(r));
        let removed = self.remove_where(r.lo, |x| x.lo == r.lo);
        debug_assert_eq!(removed, Some(r));
    }

    /// Removes the allocation or reservation containing `pfn` (never a sentinel) if
    /// `take` accepts it, in one descent; returns it.
    pub(crate) fn remove_containing(
        &mut self,
        pfn: u64,
        take: impl Fn(&Range) -> bool,
    ) -> Option<Range> {
        let (first, last) = (self.first, self.last);
        self.remove_where(pfn, |r| r.lo >= first && r.hi <= last && take(r))
    }

    /// Removes the range containing `pfn` if `take` accepts it.
    fn remove_where(&mut self, pfn: u64, take: impl Fn(&Range) -> bool) -> Option<Range> {
        let (removed, _) = self.remove_from(self.root, self.height, pfn, &take, None);
        while self.height > 0 && self.inners.get(self.root).len() == 1 {
            let only = self.inners.get(self.root).items[0].id;
            self.inners.release(self.root);
            self.root = only;
            self.height -= 1;
        }
        let r = removed?;
        if r.is_reserved() {
            self.reservations -= 1;
        } else {
            self.allocations -= 1;
        }
        self.hints.removed(r.lo, r.hi);
        Some(r)
    }

    /// Removes the range containing `pfn` below node `id`, whose summary was `old`
    /// (`None` for the root), if `take` accepts it; returns it and the node's new
    /// summary. Removing a range merges two gaps into a larger one, so the maxima only
    /// grow, except where a node loses its first or last range (then the gap next to
    /// it leaves the node and it is summarised afresh). Nodes on the way down are kept
    /// above the minimum fill first (possibly for nothing, if no range is taken), so
    /// the removal never leaves one underfull.
    fn remove_from(
        &mut self,
        id: u32,
        level: u32,
        pfn: u64,
        take: &impl Fn(&Range) -> bool,
        old: Option<Summary>,
    ) -> (Option<Range>, Summary) {
        if level == 0 {
            let leaf = self.leaves.get_mut(id);
            let found = leaf
                .items()
                .partition_point(|e| e.lo <= pfn)
                .checked_sub(1)
                .filter(|&k| {
                    let r = leaf.items[k].range();
                    pfn <= r.hi && take(&r)
                });
            let Some(k) = found else {
                return (None, old.unwrap_or_default());
            };
            let n = leaf.len();
            let r = leaf.remove(k).range();
            let Some(mut s) = old else {
                return (Some(r), Summary::default());
            };
            if k > 0 && k + 1 < n {
                s.absorb(leaf.items[k - 1].last() + 1, leaf.items[k].lo - 1);
            } else {
                s = leaf.summary();
            }
            return (Some(r), s);
        }
        let mut i = self.inners.get(id).slot_for(pfn);
        let min = if level == 1 { Leaf::MIN } else { Inner::MIN };
        if self.child_len(id, i, level - 1) <= min {
            i = self.fill_child(id, i, level - 1, pfn);
        }
        let c = self.inners.get(id).items[i];
        let (r, new) = self.remove_from(c.id, level - 1, pfn, take, Some(c.sum));
        self.inners.get_mut(id).items[i].sum = new;
        // As for insertion, restructured children leave `old` the starting point.
        let s = match old {
            None => Summary::default(),
            Some(old) => self.updated(id, i, old, c.sum, new),
        };
        (r, s)
    }

    /// Gives minimal child `i` of `parent` an item to spare, by borrowing from or merging
    /// with a sibling; returns the child to descend into afterwards.
    fn fill_child(&mut self, parent: u32, i: usize, child_level: u32, key: u64) -> usize {
        let n = self.inners.get(parent).len();
        debug_assert!(n >= 2);
        let (l, child_is_left) = if i + 1 < n { (i, true) } else { (i - 1, false) };
        let total =
            self.child_len(parent, l, child_level) + self.child_len(parent, l + 1, child_level);
        let cap = if child_level == 0 {
            LEAF_CAP
        } else {
            INNER_CAP
        };
        if total <= cap {
            let (a, b) = {
                let p = self.inners.get(parent);
                (p.items[l].id, p.items[l + 1].id)
            };
            if child_level == 0 {
                merge_in(&mut self.leaves, a, b);
            } else {
                merge_in(&mut self.inners, a, b);
            }
            self.inners.get_mut(parent).remove(l + 1);
            self.refresh(parent, l, child_level);
        } else {
            // The child gets the larger half, so it stays above the minimum after the
            // removal below it.
            let left_len = if child_is_left {
                total.div_ceil(2)
            } else {
                total / 2
            };
            self.balance_children(parent, l, child_level, left_len);
        }
        self.inners.get(parent).slot_for(key)
    }

    /// Redistributes children `l` and `l + 1` of `parent` so the left one holds
    /// `left_len` items.
    fn balance_children(&mut self, parent: u32, l: usize, child_level: u32, left_len: usize) {
        let (a, b) = {
            let p = self.inners.get(parent);
            (p.items[l].id, p.items[l + 1].id)
        };
        if child_level == 0 {
            balance_in(&mut self.leaves, a, b, left_len);
        } else {
            balance_in(&mut self.inners, a, b, left_len);
        }
        self.refresh(parent, l, child_level);
        self.refresh(parent, l + 1, child_level);
    }

    fn refresh(&mut self, parent: u32, i: usize, child_level: u32) {
        let child = self.inners.get(parent).items[i].id;
        let sum = self.node_summary(child, child_level);
        self.inners.get_mut(parent).items[i].sum = sum;
    }

    fn node_summary(&self, id: u32, level: u32) -> Summary {
        if level == 0 {
            self.leaves.get(id).summary()
        } else {
            self.inners.get(id).summary()
        }
    }

    fn node_len(&self, id: u32, level: u32) -> usize {
        if level == 0 {
            self.leaves.get(id).len()
        } else {
            self.inners.get(id).len()
        }
    }

    fn node_is_full(&self, id: u32, level: u32) -> bool {
        let cap = if level == 0 { LEAF_CAP } else { INNER_CAP };
        self.node_len(id, level) == cap
    }

    fn child_len(&self, parent: u32, i: usize, child_level: u32) -> usize {
        self.node_len(self.inners.get(parent).items[i].id, child_level)
    }

    fn child_is_full(&self, parent: u32, i: usize, child_level: u32) -> bool {
        self.node_is_full(self.inners.get(parent).items[i].id, child_level)
    }

    /// Bytes of node memory in use and reserved (arena capacity included).
    pub(crate) fn memory(&self) -> (usize, usize) {
        let used =
            self.leaves.in_use() * size_of::<Leaf>() + self.inners.in_use() * size_of::<Inner>();
        (
            used,
            self.leaves.bytes_reserved() + self.inners.bytes_reserved(),
        )
    }
}

#[cfg(test)]
impl RangeTree {
    /// Removes the range starting exactly at `lo` (never a sentinel).
    fn remove(&mut self, lo: u64) -> Option<Range> {
        let r = self.find_exact(lo)?;
        self.remove_found(r);
        Some(r)
    }

    fn height(&self) -> u32 {
        self.height
    }

    fn take_visits(&self) -> u64 {
        self.visits.replace(0)
    }

    /// Every range including sentinels, in order.
    fn all(&self) -> Vec<Range> {
        let mut out = Vec::new();
        self.collect(self.root, self.height, 0, u64::MAX, &mut out);
        out
    }

    /// Checks order, disjointness, summaries, fill and depth; panics on a violation.
    fn check(&self) {
        let sum = self.check_node(self.root, self.height, true);
        let all = self.all();
        assert_eq!(sum.lo, 0);
        assert_eq!(sum.hi, self.last + 1);
        for w in all.windows(2) {
            assert!(w[0].hi < w[1].lo, "overlap or disorder: {w:?}");
        }
        let allocs = all
            .iter()
            .filter(|r| self.in_window(**r) && !r.is_reserved())
            .count();
        let resv = all
            .iter()
            .filter(|r| self.in_window(**r) && r.is_reserved())
            .count();
        assert_eq!(allocs as u64, self.allocations);
        assert_eq!(resv as u64, self.reservations);
        assert_eq!(all.len(), allocs + resv + 2);
    }

    fn check_node(&self, id: u32, level: u32, is_root: bool) -> Summary {
        if level == 0 {
            let leaf = self.leaves.get(id);
            assert!(is_root || leaf.len() >= Leaf::MIN, "underfull leaf");
            return leaf.summary();
        }
        let node = self.inners.get(id);
        assert!(
            node.len() >= if is_root { 2 } else { Inner::MIN },
            "underfull inner"
        );
        for c in node.items() {
            let s = self.check_node(c.id, level - 1, false);
            assert_eq!(s, c.sum, "stale summary");
        }
        node.summary()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::SmallRng;
    use rand::{Rng, SeedableRng};

    /// The slow truth over a sorted list of ranges (sentinels included).
    fn brute_highest(all: &[Range], req_size: u64, align: u64, limit: u64) -> Option<u64> {
        let req = if align == 1 {
            Request::unaligned(req_size)
        } else {
            Request::aligned(req_size)
        };
        all.windows(2)
            .rev()
            .find_map(|w| req.place(w[0].hi + 1, w[1].lo - 1, limit))
    }

    /// Random allocations (any size, aligned or not, any limit) and frees against the
    /// brute force, with the whole tree re-verified (order, fill, every summary) often.
    fn churn_against_brute_force(seed: u64, last: u64, prefill: usize, steps: usize) {
        let mut rng = SmallRng::seed_from_u64(seed);
        let mut t = RangeTree::new(3, last);
        let mut live: Vec<u64> = Vec::new();
        for _ in 0..prefill {
            let size = rng.gen_range(1..=4);
            live.push(
                t.alloc(Request::unaligned(size), rng.gen_range(3..=last))
                    .unwrap(),
            );
        }
        for step in 0..steps {
            let op = rng.gen_range(0..10);
            if op < 5 || live.is_empty() {
                let size = if rng.gen_bool(0.5) {
                    rng.gen_range(1..=8)
                } else {
                    rng.gen_range(1..=200)
                };
                let aligned = rng.gen_bool(0.7);
                let limit = if rng.gen_bool(0.3) {
                    last
                } else {
                    rng.gen_range(0..=last + 10)
                };
                let req = if aligned {
                    Request::aligned(size)
                } else {
                    Request::unaligned(size)
                };
                let align = if aligned { size.next_power_of_two() } else { 1 };
                let got = t.alloc(req, limit);
                if step % 7 == 0 || live.len() < 3000 {
                    let mut all = t.all();
                    if let Some(lo) = got {
                        all.retain(|r| r.lo != lo);
                    }
                    let want = brute_highest(&all, size, align, limit.min(last));
                    assert_eq!(
                        got, want,
                        "seed {seed} step {step} size {size} align {align} limit {limit}"
                    );
                }
                if let Some(lo) = got {
                    assert!(lo >= 3 && lo + size - 1 <= limit && lo % align == 0);
                    live.push(lo);
                }
            } else {
                let k = rng.gen_range(0..live.len());
                let lo = live.swap_remove(k);
                let pfn = lo + rng.gen_range(0..t.find(lo).unwrap().pages());
                let r = t.find(pfn).unwrap();
                assert_eq!(r.lo, lo);
                t.remove_found(r);
                assert_eq!(t.find(pfn), None);
            }
            if step % 101 == 0 {
                t.check();
            }
        }
        t.check();
    }

    #[test]
    fn highest_fit_matches_brute_force_under_random_churn() {
        for seed in [1u64, 2, 3] {
            churn_against_brute_force(seed, 1 << 14, 0, 20_000);
        }
    }

    #[test]
    fn a_deep_tree_stays_exact_under_churn() {
        // ~20k ranges: three or four levels, so inner-node summaries and the incremental
        // updates between levels are exercised.
        churn_against_brute_force(4, 1 << 17, 20_000, 20_000);
    }

    /// Phases of top-down filling (mixed sizes and alignment orders under two limits,
    /// a few unaligned requests, now and then a reservation) and of random frees: every
    /// allocation must land where the plain search says, and most in the filling
    /// phases (more than half here: small sizes often fit the holes others leave) must
    /// be served by the hints.
    #[test]
    fn hinted_allocations_match_the_plain_search() {
        let mut rng = SmallRng::seed_from_u64(11);
        let last = 1 << 26;
        let mut t = RangeTree::new(1, last);
        let limits = [(1 << 22) - 1, last];
        let mut live: Vec<u64> = Vec::new();
        let (mut hinted, mut total) = (0, 0);
        for phase in 0..24 {
            for step in 0..1500 {
                let limit = limits[usize::from(rng.gen_ratio(1, 4))];
                let size = match rng.gen_range(0..20) {
                    0..=11 => rng.gen_range(64..=256),
                    12..=17 => rng.gen_range(1..=32),
                    _ => rng.gen_range(257..=2000),
                };
                let req = if rng.gen_ratio(1, 20) {
                    Request::unaligned(size)
                } else {
                    Request::aligned(size)
                };
                if rng.gen_ratio(1, 500) {
                    // Reserve where this request would have gone.
                    if let Some(lo) = t.highest_fit(req, limit) {
                        t.reserve(lo, lo + size - 1).unwrap();
                    }
                    continue;
                }
                let want = t.highest_fit(req, limit);
                if t.hints.plan(req, limit) != Plan::Full {
                    hinted += 1;
                }
                total += 1;
                let got = t.alloc(req, limit);
                assert_eq!(
                    got, want,
                    "phase {phase} step {step} {req:?} below {limit:#x}"
                );
                live.extend(got);
            }
            t.check();
            // Free a random share of what is live, in random order.
            let keep = rng.gen_range(0..=live.len() / 2);
            while live.len() > keep {
                let k = rng.gen_range(0..live.len());
                t.remove(live.swap_remove(k)).unwrap();
            }
            t.check();
        }
        assert!(hinted * 2 > total, "{hinted} of {total} allocations hinted");
    }

    #[test]
    fn reservations_merge_with_touching_and_overlapping_ones() {
        let mut t = RangeTree::new(1, 1000);
        t.reserve(10, 19).unwrap();
        t.reserve(30, 39).unwrap();
        t.reserve(20, 29).unwrap();
        assert_eq!(t.reservations(), 1);
        assert_eq!(t.find(25).map(|r| (r.lo, r.hi)), Some((10, 39)));
        let a = t.alloc(Request::unaligned(5), 45).unwrap();
        assert_eq!(a, 41);
        assert_eq!(t.reserve(38, 42).map_err(|r| r.lo), Err(41));
        assert_eq!(t.reservations(), 1);
        t.reserve(5, 50).map_err(|r| r.lo).unwrap_err();
        t.reserve(1, 9).unwrap();
        assert_eq!(t.find(1).map(|r| (r.lo, r.hi)), Some((1, 39)));
        t.check();
    }

    #[test]
    fn remove_of_a_missing_range_changes_nothing() {
        let mut t = RangeTree::new(1, 1000);
        let a = t.alloc(Request::aligned(4), 1000).unwrap();
        assert_eq!(t.remove(a + 1), None);
        assert_eq!(t.remove(0), None, "sentinels are not removable");
        assert_eq!(t.remove(1001), None);
        assert_eq!(t.find(0), None);
        assert_eq!(t.find(1001), None);
        assert_eq!(t.allocations(), 1);
        t.check();
    }

    #[test]
    fn flags_round_trip_and_do_not_change_placement() {
        let mut t = RangeTree::new(1, 1000);
        let a = t.alloc(Request::aligned(8), 1000).unwrap();
        assert_eq!(a, 992);
        assert_eq!(t.set_flags(a, CACHED).map(|r| r.flags), Some(0));
        assert!(t.find(a + 7).unwrap().is_cached());
        assert_eq!(t.alloc(Request::aligned(8), 1000), Some(984));
        t.check();
    }

    /// Builds `n` live single-page ranges at the pfns `1 mod period` of
    /// `1..=period * n`. With period 4 every free gap is `4m+2..=4m+4`: three pages, long
    /// enough for a 3-page request, yet none holds a 4-aligned start with room for it.
    /// A search guided by gap lengths alone would visit every gap to learn that.
    fn fragmented(n: u64, period: u64) -> RangeTree {
        let last = period * n;
        let mut t = RangeTree::new(1, last);
        for _ in 0..last {
            t.alloc(Request::unaligned(1), last).unwrap();
        }
        for pfn in 1..=last {
            if pfn % period != 1 {
                t.remove(pfn).unwrap();
            }
        }
        t
    }

    #[test]
    fn search_visits_o_log_n_nodes_at_100k_fragmented_ranges() {
        let n = 100_000u64;
        let t = fragmented(n, 4);
        t.check();
        assert_eq!(t.allocations(), n);
        // log_{B/2} n levels: with 100k ranges, height is at most 4.
        assert!(t.height() <= 4, "height {}", t.height());
        let bound = 2 * (u64::from(t.height()) + 1);
        let log2n = u64::from(n.ilog2()) + 1;
        assert!(bound <= 2 * log2n);
        let all = t.all();
        let mut rng = SmallRng::seed_from_u64(7);
        t.take_visits();
        let mut max_visits = 0;
        for _ in 0..3000 {
            let limit = rng.gen_range(1..=4 * n + 3);
            for (req, align) in [
                (Request::aligned(3), 4),
                (Request::aligned(4), 4),
                (Request::unaligned(4), 1),
                (Request::aligned(2), 2),
                (Request::unaligned(3), 1),
                (Request::aligned(1), 1),
            ] {
                let got = t.highest_fit(req, limit);
                let v = t.take_visits();
                max_visits = max_visits.max(v);
                assert!(v <= bound, "visited {v} nodes (bound {bound})");
                if req.size() >= 3 && align == 4 || req.size() == 4 {
                    assert_eq!(got, None);
                }
                // Spot-check exactness against the brute force (it is O(n), so rarely).
                if rng.gen_ratio(1, 50) {
                    assert_eq!(
                        got,
                        brute_highest(&all, req.size(), align, limit.min(4 * n))
                    );
                }
            }
        }
        eprintln!(
            "height {}, at most {max_visits} nodes visited per search",
            t.height()
        );
    }

    #[test]
    fn churn_at_100k_ranges_visits_o_log_n_nodes() {
        let n = 100_000u64;
        let mut t = fragmented(n, 2);
        let bound = 2 * (u64::from(t.height()) + 1);
        let mut rng = SmallRng::seed_from_u64(9);
        t.take_visits();
        for _ in 0..5000 {
            let limit = rng.gen_range(1..=2 * n);
            let lo = t.alloc(Request::aligned(1), limit).unwrap();
            // The free pfns are the even ones.
            assert_eq!(lo, if limit % 2 == 0 { limit } else { limit - 1 });
            assert!(t.take_visits() <= bound);
            t.remove(lo).unwrap();
        }
        t.check();
    }

    #[test]
    fn per_range_memory_stays_within_budget() {
        // Top-down filling, the common pattern.
        let n = 100_000u64;
        let mut t = RangeTree::new(1, 1 << 40);
        let mut los = Vec::new();
        for _ in 0..n {
            los.push(t.alloc(Request::aligned(1), 1 << 32).unwrap());
        }
        let (used, reserved) = t.memory();
        let fill = used as f64 / n as f64;
        eprintln!(
            "top-down fill: {fill:.1} B/range used, {:.1} B/range reserved",
            reserved as f64 / n as f64
        );
        assert!(fill <= 32.0, "{fill}");
        // Random churn: free half at random, allocate random sizes back.
        let mut rng = SmallRng::seed_from_u64(3);
        for _ in 0..n / 2 {
            let k = rng.gen_range(0..los.len());
            t.remove(los.swap_remove(k)).unwrap();
        }
        for _ in 0..n / 2 {
            los.push(
                t.alloc(Request::aligned(rng.gen_range(1..=4)), 1 << 32)
                    .unwrap(),
            );
        }
        for _ in 0..n {
            let k = rng.gen_range(0..los.len());
            t.remove(los.swap_remove(k)).unwrap();
            los.push(
                t.alloc(Request::aligned(rng.gen_range(1..=4)), 1 << 32)
                    .unwrap(),
            );
        }
        let (used, reserved) = t.memory();
        let churn = used as f64 / n as f64;
        eprintln!(
            "after churn: {churn:.1} B/range used, {:.1} B/range reserved",
            reserved as f64 / n as f64
        );
        assert!(churn <= 40.0, "{churn}");
        assert!(reserved as f64 / n as f64 <= 48.0);
        t.check();
        // The fragmented worst case of the search test.
        let t = fragmented(n, 4);
        let frag = t.memory().0 as f64 / n as f64;
        eprintln!("fragmented: {frag:.1} B/range used");
        assert!(frag <= 40.0, "{frag}");
    }

    #[test]
    fn leaf_and_inner_node_sizes() {
        assert_eq!(size_of::<Entry>(), 16);
        assert!(size_of::<Leaf>() <= 4 + 16 * LEAF_CAP + 4);
        assert!(size_of::<Inner>() <= 8 + 40 * INNER_CAP);
    }
}
