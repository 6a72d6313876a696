/*
 * Gathers and table-page reclamation, counted through mem_ops: table pages unlinked by
 * an unmap are not given back before iommu_pt_gather_release; a gather outliving its
 * table still gives its pages back; iommu_pt_free gives back every other page before
 * it returns; every page is freed exactly once.
 */
#define _GNU_SOURCE
#include "test.h"

struct gcase {
    uint32_t format, ias, oas, granule;
};

static const struct gcase cases[] = {
    { IOMMU_PT_FMT_VTD_SS, 48, 48, 4096 },
    { IOMMU_PT_FMT_VTD_FS, 57, 48, 4096 },
    { IOMMU_PT_FMT_ARM_S1, 48, 48, 4096 },
    { IOMMU_PT_FMT_ARM_S1, 36, 40, 16384 },
    { IOMMU_PT_FMT_ARM_S2, 40, 40, 4096 },
    { IOMMU_PT_FMT_ARM_S2, 42, 48, 65536 },
};

struct fixture {
    char name[64];
    struct counting_mem mem;
    struct iommu_pt *pt;
    struct iommu_pt_info info;
    uint64_t g, span; /* granule; what one last-level table maps */
};

static int setup(struct fixture *f, const struct gcase *c)
{
    snprintf(f->name, sizeof(f->name), "%s ias %u granule %u", format_name(c->format), c->ias,
             c->granule);
    counting_mem_init(&f->mem);
    struct iommu_pt_config cfg = test_config(c->format, c->ias, c->oas, c->granule);
    cfg.mem = &counting_ops;
    cfg.mem_ctx = &f->mem;
    if (iommu_pt_new(&cfg, &f->pt) != 0) {
        CHECK(0, "%s: create", f->name);
        return -1;
    }
    iommu_pt_get_info(f->pt, &f->info);
    f->g = f->info.granule;
    f->span = f->g * (f->g / 8);
    return 0;
}

static uint64_t table_pages(struct fixture *f)
{
    struct iommu_pt_info info;
    iommu_pt_get_info(f->pt, &info);
    return info.table_pages;
}

/* Maps one last-level table's whole span with granule pages at `iova`: allocates the
 * tables down to it. Returns the allocation numbers [first, last] it used. */
static void fill_span(struct fixture *f, uint64_t iova, uint64_t *first, uint64_t *last)
{
    *first = f->mem.allocs + 1;
    uint64_t mapped = 0;
    CHECK_EQ(iommu_pt_map_pages(f->pt, iova, iova, f->g, f->span / f->g,
                                IOMMU_PT_READ | IOMMU_PT_WRITE, &mapped),
             0, "%s", f->name);
    CHECK_EQ(mapped, f->span, "%s", f->name);
    *last = f->mem.allocs;
    CHECK(*last >= *first, "%s: tables were allocated", f->name);
}

/* Churns other parts of the table with gather-less unmaps that retire tables, so the
 * epoch advances and reclamation runs. */
static void churn(struct fixture *f, uint64_t base)
{
    for (int i = 0; i < 64; i++) {
        iommu_pt_map_pages(f->pt, base, base, f->g, f->span / f->g, IOMMU_PT_READ, NULL);
        CHECK_EQ(iommu_pt_unmap(f->pt, base, f->span, NULL), f->span, "%s", f->name);
    }
    usleep(1000);
}

static void finish(struct fixture *f)
{
    iommu_pt_free(f->pt);
    CHECK_EQ(f->mem.allocs, f->mem.frees, "%s: every page given back by iommu_pt_free",
             f->name);
    CHECK_EQ(f->mem.nlive, 0, "%s", f->name);
    CHECK_EQ(f->mem.bad_frees, 0, "%s: double or unknown frees", f->name);
    CHECK_EQ(f->mem.bad_p2v, 0, "%s: phys_to_virt of a page not live", f->name);
    counting_mem_destroy(&f->mem);
}

static void held_until_release(const struct gcase *c)
{
    struct fixture f;
    if (setup(&f, c))
        return;
    const uint64_t X = 4 * f.span, Y = 64 * f.span; /* Y: far from X, other tables */
    uint64_t first, last;
    fill_span(&f, X, &first, &last);
    uint64_t pages = table_pages(&f);
    CHECK_EQ(pages, counting_live_granules(&f.mem, f.g), "%s: table_pages counts live pages",
             f.name);

    struct iommu_pt_gather *g = iommu_pt_gather_new();
    CHECK_EQ(iommu_pt_unmap(f.pt, X, f.span, g), f.span, "%s", f.name);
    CHECK(iommu_pt_gather_freed_tables(g) >= 1, "%s: the last-level table was unlinked",
          f.name);
    uint64_t s = 0, l = 0;
    CHECK_EQ(iommu_pt_gather_range(g, &s, &l), 0, "%s", f.name);
    CHECK(s <= X && l >= X + f.span - 1, "%s: range %#" PRIx64 "..%#" PRIx64, f.name, s, l);
    CHECK_EQ(table_pages(&f), pages, "%s: gathered pages still count", f.name);
    CHECK_EQ(iommu_pt_iova_to_phys(f.pt, X), 0, "%s", f.name);

    /* The pages of X's last-level table are held, however the epoch moves. */
    churn(&f, Y);
    for (uint64_t seq = first; seq <= last; seq++)
        if (!counting_is_live(&f.mem, seq))
            CHECK(0, "%s: page %" PRIu64 " given back before the release", f.name, seq);
    CHECK(counting_is_live(&f.mem, last), "%s: the unlinked table is held", f.name);

    iommu_pt_gather_release(g);
    CHECK_EQ(iommu_pt_gather_freed_tables(g), 0, "%s: release resets", f.name);
    CHECK_EQ(iommu_pt_gather_range(g, &s, &l), -ENOENT, "%s: release resets", f.name);

    /* Reuse after release. */
    fill_span(&f, X, &first, &last);
    CHECK_EQ(iommu_pt_unmap_pages(f.pt, X, f.g, f.span / f.g, g), f.span, "%s", f.name);
    CHECK(iommu_pt_gather_freed_tables(g) >= 1, "%s", f.name);
    iommu_pt_gather_free(g);

    /* After the release, reclamation gives them back eventually; free gives the rest. */
    churn(&f, Y);
    finish(&f);
}

static void gather_outlives_table(const struct gcase *c)
{
    struct fixture f;
    if (setup(&f, c))
        return;
    const uint64_t X = 8 * f.span;
    uint64_t first, last;
    fill_span(&f, X, &first, &last);
    struct iommu_pt_gather *g = iommu_pt_gather_new();
    CHECK_EQ(iommu_pt_unmap(f.pt, X, f.span, g), f.span, "%s", f.name);
    uint64_t held = iommu_pt_gather_freed_tables(g);
    CHECK(held >= 1, "%s", f.name);

    iommu_pt_free(f.pt); /* everything but the gathered pages comes back now */
    CHECK(f.mem.nlive >= 1 && f.mem.nlive <= held, "%s: %zu live, %" PRIu64 " held", f.name,
          f.mem.nlive, held);
    CHECK(counting_is_live(&f.mem, last), "%s: the gathered table is still held", f.name);
    CHECK_EQ(f.mem.bad_frees, 0, "%s", f.name);

    iommu_pt_gather_free(g); /* ... and the gathered ones when the gather goes */
    CHECK_EQ(f.mem.nlive, 0, "%s: the gather gave its pages back", f.name);
    CHECK_EQ(f.mem.allocs, f.mem.frees, "%s", f.name);
    CHECK_EQ(f.mem.bad_frees, 0, "%s", f.name);
    CHECK_EQ(f.mem.bad_p2v, 0, "%s", f.name);
    counting_mem_destroy(&f.mem);
}

static void released_after_free(const struct gcase *c)
{
    struct fixture f;
    if (setup(&f, c))
        return;
    const uint64_t X = 2 * f.span;
    uint64_t first, last;
    fill_span(&f, X, &first, &last);
    struct iommu_pt_gather *g = iommu_pt_gather_new();
    CHECK_EQ(iommu_pt_unmap(f.pt, X, f.span, g), f.span, "%s", f.name);
    iommu_pt_free(f.pt);
    iommu_pt_gather_release(g); /* the table is gone: pages go back at once */
    CHECK_EQ(f.mem.nlive, 0, "%s", f.name);
    CHECK_EQ(f.mem.allocs, f.mem.frees, "%s", f.name);
    CHECK_EQ(iommu_pt_gather_range(g, &first, &last), -ENOENT, "%s", f.name);
    iommu_pt_gather_free(g);
    CHECK_EQ(f.mem.allocs, f.mem.frees, "%s: exactly once", f.name);
    CHECK_EQ(f.mem.bad_frees, 0, "%s", f.name);
    counting_mem_destroy(&f.mem);
}

static void retired_without_gather(const struct gcase *c)
{
    struct fixture f;
    if (setup(&f, c))
        return;
    const uint64_t X = 6 * f.span;
    uint64_t first, last;
    /* A map replacing an empty subtree by a larger leaf retires the subtree's table. */
    uint64_t big = f.info.pgsize_bitmap & ~f.g;
    big &= -big;
    if (big == f.span) {
        fill_span(&f, X, &first, &last);
        CHECK_EQ(iommu_pt_unmap(f.pt, X + f.g, f.span - f.g, NULL), f.span - f.g, "%s", f.name);
        CHECK_EQ(iommu_pt_unmap(f.pt, X, f.g, NULL), f.g, "%s: table kept (two unmaps)", f.name);
        CHECK_EQ(iommu_pt_map_pages(f.pt, X, X, big, 1, IOMMU_PT_READ, NULL), 0,
                 "%s: the empty subtree is replaced", f.name);
        struct iommu_pt_translation t;
        CHECK_EQ(iommu_pt_translate(f.pt, X + 5, &t), 0, "%s", f.name);
        CHECK_EQ(t.size, big, "%s", f.name);
        CHECK_EQ(iommu_pt_unmap(f.pt, X, big, NULL), big, "%s", f.name);
    }
    /* Gather-less unmaps over and over: pages come back through the epoch or the free. */
    for (int i = 0; i < 32; i++) {
        fill_span(&f, X, &first, &last);
        CHECK_EQ(iommu_pt_unmap(f.pt, X, f.span, NULL), f.span, "%s", f.name);
    }
    finish(&f);
}

int main(void)
{
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        held_until_release(&cases[i]);
        gather_outlives_table(&cases[i]);
        released_after_free(&cases[i]);
        retired_without_gather(&cases[i]);
    }
    return test_summary();
}
