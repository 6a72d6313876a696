//! Unlinking subtrees: collecting the pages of a detached subtree, replacing an empty
//! subtree by a leaf, and freeing the whole tree when the table drops.
//!
//! Every page is owned by exactly one entry, and ownership moves only by a successful
//! compare-exchange of that entry (to empty), so even overlapping (buggy) callers can
//! never both collect, and then free, one page.

use crate::addr::Iova;
use crate::error::{Error, Result};
use crate::format::Format;
use crate::level::Level;
use crate::memory::{TableMemory, TablePage};
use crate::sync::Ordering;
use crate::sync::epoch::Guard;
use crate::table::PageTable;
use crate::walk::{Class, OwnTables, Step, Visit, Walker};
use std::ops::ControlFlow;
use std::ptr::NonNull;

type Own<'g, F, M> = Walker<'g, F, OwnTables<'g, M>>;

/// Takes every table below a detached table, by swapping each table entry to empty.
struct Collect<'p, F: Format, M: TableMemory> {
    pt: &'p PageTable<F, M>,
    out: Vec<TablePage>,
}

impl<'g, F: Format, M: TableMemory> Visit<'g, F, OwnTables<'g, M>> for Collect<'_, F, M> {
    type Break = ();

    fn entry(
        &mut self,
        w: &Own<'g, F, M>,
        at: &Level<'g>,
        idx: usize,
        raw: u64,
        class: Class,
    ) -> ControlFlow<(), Step<'g>> {
        if let Class::Table(pa) = class {
            let detached = at
                .entry(idx)
                .compare_exchange(raw, 0, Ordering::AcqRel, Ordering::Acquire)
                .is_ok();
            if detached && let Some(child) = w.child(at, idx, pa) {
                return ControlFlow::Continue(Step::Descend(child));
            }
        }
        ControlFlow::Continue(Step::Next(1))
    }

    fn leave(
        &mut self,
        w: &Own<'g, F, M>,
        at: &Level<'g>,
        _idx: usize,
        raw: u64,
        child: &Level<'g>,
    ) -> ControlFlow<()> {
        if let Class::Table(pa) = w.classify(raw, at.level) {
            self.out
                .push(self.pt.table_page(child.table, pa, child.level));
        }
        ControlFlow::Continue(())
    }
}

/// Frees every table below the top (the table is being dropped).
struct FreeAll<'p, F: Format, M: TableMemory> {
    pt: &'p PageTable<F, M>,
}

impl<'g, F: Format, M: TableMemory> Visit<'g, F, OwnTables<'g, M>> for FreeAll<'_, F, M> {
    type Break = ();

    fn entry(
        &mut self,
        w: &Own<'g, F, M>,
        at: &Level<'g>,
        idx: usize,
        _raw: u64,
        class: Class,
    ) -> ControlFlow<(), Step<'g>> {
        match class {
            Class::Table(pa) => match w.child(at, idx, pa) {
                Some(child) => ControlFlow::Continue(Step::Descend(child)),
                // Memory that no longer maps its own page: what is below is unreachable
                // and stays allocated rather than risk a wrong free.
                None => ControlFlow::Continue(Step::Next(1)),
            },
            _ => ControlFlow::Continue(Step::Next(1)),
        }
    }

    fn leave(
        &mut self,
        w: &Own<'g, F, M>,
        at: &Level<'g>,
        _idx: usize,
        raw: u64,
        child: &Level<'g>,
    ) -> ControlFlow<()> {
        if let Class::Table(pa) = w.classify(raw, at.level) {
            let page = self.pt.table_page(child.table, pa, child.level);
            // SAFETY: the table is being dropped (`&mut self`), so nobody else reaches the
            // tree; the page was allocated by this table, is reachable only through this
            // entry, and the walk leaves each entry once (children first).
            unsafe { self.pt.shared.free_now(page) };
        }
        ControlFlow::Continue(())
    }
}

/// Stops at the first leaf (or malformed entry) below a table.
struct Occupied;

impl<'g, F: Format, M: TableMemory> Visit<'g, F, OwnTables<'g, M>> for Occupied {
    type Break = ();

    fn entry(
        &mut self,
        w: &Own<'g, F, M>,
        at: &Level<'g>,
        idx: usize,
        _raw: u64,
        class: Class,
    ) -> ControlFlow<(), Step<'g>> {
        match class {
            Class::Empty => ControlFlow::Continue(Step::Next(1)),
            Class::Table(pa) => match w.child(at, idx, pa) {
                Some(child) => ControlFlow::Continue(Step::Descend(child)),
                None => ControlFlow::Break(()),
            },
            Class::Leaf | Class::Bad(_) => ControlFlow::Break(()),
        }
    }
}

impl<F: Format, M: TableMemory> PageTable<F, M> {
    /// Every page of the subtree whose table entry the caller just detached (by a
    /// successful compare-exchange): the table `child` at `pa` and every table below.
    pub(crate) fn detached_pages<'g>(
        &self,
        w: &Own<'g, F, M>,
        child: &Level<'g>,
        pa: u64,
    ) -> Vec<TablePage> {
        let mut v = Collect {
            pt: self,
            out: Vec::new(),
        };
        let _ = w.for_each(child, child.base, child.last(), &mut v);
        v.out.push(self.table_page(child.table, pa, child.level));
        v.out
    }

    /// Whether nothing is mapped below `table`.
    pub(crate) fn subtree_empty<'g>(&self, w: &Own<'g, F, M>, table: &Level<'g>) -> bool {
        w.for_each(table, table.base, table.last(), &mut Occupied)
            .is_continue()
    }

    /// Unlinks the table that entry `idx` of `at` points to (holding `old`) if its
    /// subtree maps nothing, so that a larger leaf can take its place: the entry is
    /// written empty, the flush hook runs for its span, and the pages are returned for
    /// the caller to retire once the leaf is written.
    ///
    /// # Errors
    /// [`Error::Exists`] if `old` is a leaf or the subtree maps something (or another
    /// thread changed the entry), [`Error::TableUnreachable`] if the memory does not map
    /// the table back.
    #[cold]
    #[inline(never)]
    pub(crate) fn unlink_empty<'g>(
        &self,
        w: &Own<'g, F, M>,
        at: &Level<'g>,
        idx: usize,
        old: u64,
    ) -> Result<Vec<TablePage>> {
        let base = at.iova(idx);
        let exists = Error::Exists {
            iova: Iova(base),
            mapped: 0,
        };
        let Class::Table(pa) = w.classify(old, at.level) else {
            return Err(exists);
        };
        let child = w
            .child(at, idx, pa)
            .ok_or_else(|| Own::<F, M>::unreachable(base, pa))?;
        if !self.subtree_empty(w, &child) {
            return Err(exists);
        }
        let e = at.entry(idx);
        if e.compare_exchange(old, 0, Ordering::AcqRel, Ordering::Acquire)
            .is_err()
        {
            return Err(exists);
        }
        self.shared.mem.clean(NonNull::from(e).cast(), 8);
        // Break-before-make: the entry is empty while the hardware's caches drop it.
        if let Some(hook) = &self.flush {
            hook.flush_walk(Iova(base), at.span());
        }
        Ok(self.detached_pages(w, &child, pa))
    }

    /// Frees every table below the top. Only for `drop`: nobody else may reach the tree.
    pub(crate) fn free_tree(&self, g: &Guard) {
        let w = self.walker(g);
        let root = w.root();
        let _ = w.for_each(&root, 0, root.last(), &mut FreeAll { pt: self });
    }
}
