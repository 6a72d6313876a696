/*
 * API level 2: flush ops and gathers over several tables.
 *
 * - A map that replaces an empty subtree by a larger leaf detaches the entry, calls
 *   flush_walk once with the entry's span while the entry is empty, writes the leaf,
 *   and only then lets the replaced pages go (they are still allocated during the
 *   flush, and come back through mem_ops->free after it).
 * - An unmap with a NULL gather calls flush_walk once with the unmapped range.
 * - One gather holding the unmaps of two tables (two formats, two memories) keeps every
 *   page of both until it is released, however much other traffic pins the epoch.
 * - A phys_to_virt that fails for a page of the table gives -EIO, never a crash.
 */
#define _GNU_SOURCE
#include "test.h"

#if !defined(IOMMU_PT_API_LEVEL) || IOMMU_PT_API_LEVEL < 2
#error "iommu_pt.h must define IOMMU_PT_API_LEVEL >= 2"
#endif

struct flush_log {
    struct iommu_pt *pt;
    struct counting_mem *mem;
    int calls;
    uint64_t iova, size;
    int translate_rc;   /* iommu_pt_translate of `iova` during the call */
    uint64_t frees_then; /* counting_frees(mem) during the call */
};

static void record_flush(void *ctx, uint64_t iova, uint64_t size)
{
    struct flush_log *l = ctx;
    struct iommu_pt_translation t;
    l->calls++;
    l->iova = iova;
    l->size = size;
    l->translate_rc = l->pt ? iommu_pt_translate(l->pt, iova, &t) : 0;
    l->frees_then = counting_frees(l->mem);
}

static const struct iommu_pt_flush_ops flush_ops = { .flush_walk = record_flush };

/* Lets epoch reclamation run: other tables' gather-less unmaps pin and retire. */
static void churn(void)
{
    struct iommu_pt_config cfg = test_config(IOMMU_PT_FMT_VTD_SS, 48, 48, 4096);
    struct iommu_pt *busy;
    if (iommu_pt_new(&cfg, &busy) != 0)
        abort();
    for (int i = 0; i < 256; i++) {
        iommu_pt_map_pages(busy, 0x40000000, 0, 4096, 512, IOMMU_PT_READ, NULL);
        iommu_pt_unmap(busy, 0x40000000, 0x200000, NULL);
    }
    iommu_pt_free(busy);
    usleep(1000);
}

static void replacement_is_flushed_first(uint32_t format, uint32_t granule)
{
    const char *name = format_name(format);
    struct counting_mem mem;
    counting_mem_init(&mem);
    struct flush_log log = { .mem = &mem };
    struct iommu_pt_config cfg = test_config(format, 48, 48, granule);
    cfg.mem = &counting_ops;
    cfg.mem_ctx = &mem;
    cfg.flush = &flush_ops;
    cfg.flush_ctx = &log;
    struct iommu_pt *pt;
    CHECK_EQ(iommu_pt_new(&cfg, &pt), 0, "%s", name);
    log.pt = pt;
    struct iommu_pt_info info;
    iommu_pt_get_info(pt, &info);
    uint64_t g = info.granule, span = g * (g / 8);
    if (!(info.pgsize_bitmap & span)) {
        iommu_pt_free(pt);
        counting_mem_destroy(&mem);
        return;
    }
    uint64_t base = 8 * span;
    /* One page, then unmapped without a gather: one flush of that page, the table stays. */
    CHECK_EQ(iommu_pt_map_pages(pt, base + g, 0, g, 1, IOMMU_PT_READ, NULL), 0, "%s", name);
    uint64_t table_seq = mem.allocs; /* the last-level table: the last allocation */
    CHECK_EQ(iommu_pt_unmap(pt, base + g, g, NULL), g, "%s", name);
    CHECK_EQ(log.calls, 1, "%s: unmap with a NULL gather flushes", name);
    CHECK_EQ(log.iova, base + g, "%s", name);
    CHECK_EQ(log.size, g, "%s", name);
    CHECK(counting_is_live(&mem, table_seq), "%s: the table stays (not its whole span)", name);

    /* A block over the empty table: flushed while the entry is empty, table still live. */
    uint64_t frees_before = counting_frees(&mem);
    CHECK_EQ(iommu_pt_map_pages(pt, base, 0x40000000, span, 1, IOMMU_PT_READ, NULL), 0, "%s",
             name);
    CHECK_EQ(log.calls, 2, "%s: one flush for the replaced entry", name);
    CHECK_EQ(log.iova, base, "%s", name);
    CHECK_EQ(log.size, span, "%s: the entry's whole span", name);
    CHECK_EQ(log.translate_rc, -ENOENT, "%s: break-before-make: empty while flushing", name);
    CHECK_EQ(log.frees_then, frees_before, "%s: nothing freed before the flush returned", name);
    struct iommu_pt_translation t;
    CHECK_EQ(iommu_pt_translate(pt, base + 5, &t), 0, "%s", name);
    CHECK_EQ(t.size, span, "%s: the block is there after the flush", name);
    /* The replaced table comes back afterwards. */
    for (int i = 0; i < 200 && counting_is_live(&mem, table_seq); i++)
        churn();
    CHECK(!counting_is_live(&mem, table_seq), "%s: the replaced table was given back", name);
    iommu_pt_free(pt);
    CHECK_EQ(mem.nlive, 0, "%s", name);
    CHECK_EQ(mem.bad_frees, 0, "%s", name);
    counting_mem_destroy(&mem);
}

static void one_gather_two_tables(void)
{
    struct counting_mem ma, mb;
    counting_mem_init(&ma);
    counting_mem_init(&mb);
    struct iommu_pt_config ca = test_config(IOMMU_PT_FMT_VTD_SS, 48, 48, 4096);
    ca.mem = &counting_ops;
    ca.mem_ctx = &ma;
    struct iommu_pt_config cb = test_config(IOMMU_PT_FMT_ARM_S1, 48, 48, 4096);
    cb.mem = &counting_ops;
    cb.mem_ctx = &mb;
    struct iommu_pt *a, *b;
    CHECK_EQ(iommu_pt_new(&ca, &a), 0, "a");
    CHECK_EQ(iommu_pt_new(&cb, &b), 0, "b");
    const uint64_t X = 0x1200000, SPAN = 0x200000;
    CHECK_EQ(iommu_pt_map_pages(a, X, 0, 4096, 512, IOMMU_PT_READ, NULL), 0, "a");
    uint64_t sa = ma.allocs;
    CHECK_EQ(iommu_pt_map_pages(b, X, 0, 4096, 512, IOMMU_PT_READ, NULL), 0, "b");
    uint64_t sb = mb.allocs;
    struct iommu_pt_gather *g = iommu_pt_gather_new();
    CHECK_EQ(iommu_pt_unmap(a, X, SPAN, g), SPAN, "a");
    CHECK_EQ(iommu_pt_unmap(b, X, SPAN, g), SPAN, "b");
    CHECK_EQ(iommu_pt_gather_freed_tables(g), 2, "one table of each");
    uint64_t s, l;
    CHECK_EQ(iommu_pt_gather_range(g, &s, &l), 0, "range");
    CHECK(s == X && l == X + SPAN - 1, "range %#" PRIx64 "..%#" PRIx64, s, l);
    for (int i = 0; i < 20; i++)
        churn();
    CHECK(counting_is_live(&ma, sa), "a's table held until the release");
    CHECK(counting_is_live(&mb, sb), "b's table held until the release");
    iommu_pt_gather_release(g);
    for (int i = 0; i < 200 && (counting_is_live(&ma, sa) || counting_is_live(&mb, sb)); i++)
        churn();
    CHECK(!counting_is_live(&ma, sa) && !counting_is_live(&mb, sb), "both given back");
    iommu_pt_gather_free(g);
    iommu_pt_free(a);
    iommu_pt_free(b);
    CHECK_EQ(ma.nlive + mb.nlive, 0, "everything back");
    CHECK_EQ(ma.bad_frees + mb.bad_frees, 0, "exactly once");
    counting_mem_destroy(&ma);
    counting_mem_destroy(&mb);
}

/* counting_mem, but phys_to_virt answers NULL while `broken` is set. */
static atomic_int broken;
static void *flaky_phys_to_virt(void *ctx, uint64_t phys)
{
    if (atomic_load(&broken))
        return NULL;
    return counting_phys_to_virt(ctx, phys);
}
static const struct iommu_pt_mem_ops flaky_ops = {
    .alloc = counting_alloc,
    .free = counting_free,
    .phys_to_virt = flaky_phys_to_virt,
};

static void broken_phys_to_virt_is_eio(void)
{
    struct counting_mem mem;
    counting_mem_init(&mem);
    struct iommu_pt_config cfg = test_config(IOMMU_PT_FMT_ARM_S1, 48, 48, 4096);
    cfg.mem = &flaky_ops;
    cfg.mem_ctx = &mem;
    struct iommu_pt *pt;
    atomic_store(&broken, 1);
    CHECK_EQ(iommu_pt_new(&cfg, &pt), -EIO, "the root does not map back");
    CHECK_EQ(mem.nlive, 0, "the refused root went back");
    atomic_store(&broken, 0);
    CHECK_EQ(iommu_pt_new(&cfg, &pt), 0, "create");
    CHECK_EQ(iommu_pt_map_pages(pt, 0x1000, 0x5000, 4096, 1, IOMMU_PT_READ, NULL), 0, "map");
    atomic_store(&broken, 1);
    struct iommu_pt_translation t;
    CHECK_EQ(iommu_pt_translate(pt, 0x1000, &t), -EIO, "translate through a lost table");
    CHECK_EQ(iommu_pt_iova_to_phys(pt, 0x1000), 0, "iova_to_phys");
    CHECK_EQ(iommu_pt_map_pages(pt, 0x2000, 0, 4096, 1, IOMMU_PT_READ, NULL), -EIO,
             "map through a lost table is -EIO, not -EEXIST");
    CHECK_EQ(iommu_pt_unmap(pt, 0x1000, 4096, NULL), 0, "unmap stops there");
    iommu_pt_free(pt); /* no crash; the tables below the root cannot be reached */
    CHECK_EQ(mem.bad_frees, 0, "never a wrong free");
    atomic_store(&broken, 0);
    counting_mem_destroy(&mem);

    /* Flush ops without a callback are refused. */
    struct iommu_pt_flush_ops none = { .flush_walk = NULL };
    struct iommu_pt_config c2 = test_config(IOMMU_PT_FMT_VTD_SS, 48, 48, 4096);
    c2.flush = &none;
    CHECK_EQ(iommu_pt_new(&c2, &pt), -EINVAL, "flush ops need flush_walk");
}

int main(void)
{
    replacement_is_flushed_first(IOMMU_PT_FMT_VTD_SS, 4096);
    replacement_is_flushed_first(IOMMU_PT_FMT_VTD_FS, 4096);
    replacement_is_flushed_first(IOMMU_PT_FMT_ARM_S1, 4096);
    replacement_is_flushed_first(IOMMU_PT_FMT_ARM_S2, 16384);
    one_gather_two_tables();
    broken_phys_to_virt_is_eio();
    return test_summary();
}
