/*
 * Dirty tracking through the C API on every format: the exact clean and dirty words
 * of docs/c-api.md (read back from the table's own dump), enabling and disabling, bitmaps
 * for partial ranges, page sizes and large leaves, NO_CLEAR, and every bad argument's
 * errno with no entry and no bitmap bit changed.
 */
#define _GNU_SOURCE
#include "test.h"

#ifndef IOMMU_PT_DIRTY_NO_CLEAR
#error "iommu_pt.h must define IOMMU_PT_DIRTY_NO_CLEAR with the dirty-tracking calls"
#endif

/* The raw leaf entry of `iova` (the last word of its line in the dump), or 0. */
static uint64_t leaf_raw(const struct iommu_pt *pt, uint64_t iova)
{
    FILE *f = tmpfile();
    if (!f || iommu_pt_dump(pt, fileno(f)) != 0)
        abort();
    rewind(f);
    char line[512];
    uint64_t raw = 0;
    while (fgets(line, sizeof(line), f)) {
        uint64_t at;
        if (sscanf(line, "0x%" SCNx64 " |", &at) == 1 && at == iova) {
            char *last = strrchr(line, 'x');
            raw = strtoull(last + 1, NULL, 16);
        }
    }
    fclose(f);
    return raw;
}

struct dcase {
    uint32_t format, ias;
    uint64_t tracked;                /* bits set on a tracked writable leaf */
    uint64_t dirty_set, dirty_clear; /* the hardware's write: bits it sets / clears */
};

#define DBM (1ULL << 51)
static const struct dcase cases[] = {
    { IOMMU_PT_FMT_VTD_SS, 48, 1ULL << 1, 1ULL << 9, 0 },
    { IOMMU_PT_FMT_VTD_FS, 48, 1ULL << 1, 1ULL << 6, 0 },
    { IOMMU_PT_FMT_ARM_S1, 48, DBM, 0, 1ULL << 7 },
    { IOMMU_PT_FMT_ARM_S2, 40, DBM, 1ULL << 7, 0 },
};

static void one_format(const struct dcase *c)
{
    const char *name = format_name(c->format);
    struct iommu_pt_config cfg = test_config(c->format, c->ias, 40, 4096);
    struct iommu_pt *pt;
    CHECK_EQ(iommu_pt_new(&cfg, &pt), 0, "%s", name);
    const uint64_t g = 4096, X = 0x4000000, Y = 0x8000000, M2 = 0x200000;
    uint64_t bm[9];
    memset(bm, 0, sizeof(bm));
    CHECK_EQ(iommu_pt_read_and_clear_dirty(pt, X, 16 * g, g, bm, 0), -EINVAL,
             "%s: tracking off", name);
    CHECK_EQ(iommu_pt_map_pages(pt, X, 0x1000000, g, 16, IOMMU_PT_READ | IOMMU_PT_WRITE,
                                NULL), 0, "%s", name);
    CHECK_EQ(iommu_pt_map_pages(pt, X + 16 * g, 0x1010000, g, 1, IOMMU_PT_READ, NULL), 0,
             "%s", name);
    CHECK_EQ(iommu_pt_map_pages(pt, Y, 0x2000000, M2, 1, IOMMU_PT_READ | IOMMU_PT_WRITE, NULL),
             0, "%s", name);
    uint64_t plain = leaf_raw(pt, X + 3 * g), ro = leaf_raw(pt, X + 16 * g);
    CHECK(plain != 0 && ro != 0, "%s: leaves in the dump", name);

    CHECK_EQ(iommu_pt_set_dirty_tracking(pt, true), 0, "%s: enable", name);
    uint64_t clean = leaf_raw(pt, X + 3 * g);
    CHECK_EQ(clean & c->tracked, c->tracked, "%s: tracked", name);
    CHECK_EQ(clean & c->dirty_set, 0, "%s: clean", name);
    CHECK_EQ(clean & c->dirty_clear, c->dirty_clear, "%s: clean", name);
    CHECK_EQ(leaf_raw(pt, X + 16 * g), ro, "%s: read-only leaves never change", name);
    struct iommu_pt_translation t;
    CHECK_EQ(iommu_pt_translate(pt, X + 3 * g, &t), 0, "%s", name);
    CHECK(t.prot & IOMMU_PT_WRITE, "%s: a clean tracked leaf is reported writable", name);

    /* The hardware writes page 3 and page 9. */
    CHECK_EQ(iommu_pt_mark_dirty(pt, X + 3 * g), 1, "%s: was clean", name);
    CHECK_EQ(iommu_pt_mark_dirty(pt, X + 3 * g), 0, "%s: already dirty", name);
    CHECK_EQ(iommu_pt_mark_dirty(pt, X + 16 * g), -EINVAL, "%s: read-only", name);
    CHECK_EQ(iommu_pt_mark_dirty(pt, X + 64 * g), -ENOENT, "%s: unmapped", name);
    uint64_t dirty = leaf_raw(pt, X + 3 * g);
    CHECK_EQ(dirty, (clean | c->dirty_set) & ~c->dirty_clear, "%s: the dirty word", name);
    CHECK_EQ(iommu_pt_mark_dirty(pt, X + 9 * g), 1, "%s", name);

    /* NO_CLEAR reports and keeps; the clearing read reports and cleans. */
    memset(bm, 0, sizeof(bm));
    CHECK_EQ(iommu_pt_read_and_clear_dirty(pt, X + 2 * g, 8 * g, g, bm,
                                           IOMMU_PT_DIRTY_NO_CLEAR), 0, "%s", name);
    CHECK_EQ(bm[0], (1ULL << 1) | (1ULL << 7), "%s: pages 3 and 9 from page 2", name);
    CHECK_EQ(leaf_raw(pt, X + 3 * g), dirty, "%s: NO_CLEAR keeps it dirty", name);
    bm[0] = 1ULL << 63;
    CHECK_EQ(iommu_pt_read_and_clear_dirty(pt, X, 16 * g, g, bm, 0), 0, "%s", name);
    CHECK_EQ(bm[0], (1ULL << 63) | (1ULL << 3) | (1ULL << 9), "%s: only sets bits", name);
    CHECK_EQ(leaf_raw(pt, X + 3 * g), clean, "%s: cleaned", name);
    memset(bm, 0, sizeof(bm));
    CHECK_EQ(iommu_pt_read_and_clear_dirty(pt, X, 16 * g, 8 * g, bm, 0), 0, "%s", name);
    CHECK_EQ(bm[0], 0, "%s: nothing left", name);

    /* A dirty 2M leaf reports all its pages. */
    CHECK_EQ(iommu_pt_mark_dirty(pt, Y + 5 * g), 1, "%s", name);
    memset(bm, 0, sizeof(bm));
    CHECK_EQ(iommu_pt_read_and_clear_dirty(pt, Y, M2, g, bm, 0), 0, "%s", name);
    int ones = 0;
    for (int i = 0; i < 8; i++)
        ones += __builtin_popcountll(bm[i]);
    CHECK_EQ(ones, 512, "%s: every 4K of the 2M leaf", name);
    CHECK_EQ(bm[8], 0, "%s: nothing beyond the range", name);

    /* Bad arguments: their errno, no bit and no entry changed. */
    CHECK_EQ(iommu_pt_mark_dirty(pt, X + 4 * g), 1, "%s", name);
    uint64_t before = leaf_raw(pt, X + 4 * g);
    struct { uint64_t iova, len, ps; uint32_t flags; int err; } bad[] = {
        { X, 16 * g, g + 1, 0, -EINVAL },     /* not a power of two */
        { X, 16 * g, g / 2, 0, -EINVAL },     /* below the granule */
        { X + g, 16 * g, 2 * g, 0, -EINVAL }, /* iova not a multiple */
        { X, 3 * g, 2 * g, 0, -EINVAL },      /* len not a multiple */
        { X, 0, g, 0, -EINVAL },              /* empty */
        { X, 16 * g, g, 2, -EINVAL },         /* unknown flag */
        { (1ULL << c->ias) - g, 2 * g, g, 0, -ERANGE },
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        memset(bm, 0x5a, sizeof(bm));
        CHECK_EQ(iommu_pt_read_and_clear_dirty(pt, bad[i].iova, bad[i].len, bad[i].ps, bm,
                                               bad[i].flags),
                 bad[i].err, "%s: bad row %zu", name, i);
        for (int w = 0; w < 9; w++)
            CHECK_EQ(bm[w], 0x5a5a5a5a5a5a5a5aULL, "%s: row %zu left the bitmap alone", name, i);
    }
    CHECK_EQ(iommu_pt_read_and_clear_dirty(pt, X, 16 * g, g, NULL, 0), -EINVAL, "%s", name);
    CHECK_EQ(iommu_pt_read_and_clear_dirty(NULL, X, 16 * g, g, bm, 0), -EINVAL, "%s", name);
    CHECK_EQ(leaf_raw(pt, X + 4 * g), before, "%s: no entry changed", name);

    /* Off: writable leaves lose tracking and stay writable; new leaves untracked. */
    CHECK_EQ(iommu_pt_set_dirty_tracking(pt, false), 0, "%s: disable", name);
    uint64_t off = leaf_raw(pt, X + 3 * g);
    CHECK_EQ(off & (c->tracked & DBM), 0, "%s: no DBM when off", name);
    CHECK_EQ(iommu_pt_translate(pt, X + 3 * g, &t), 0, "%s", name);
    CHECK(t.prot & IOMMU_PT_WRITE, "%s: still writable", name);
    if (c->format != IOMMU_PT_FMT_VTD_SS)
        CHECK_EQ(off, plain, "%s: back to the encoding without tracking", name);
    CHECK_EQ(iommu_pt_set_dirty_tracking(NULL, true), -EINVAL, "%s", name);
    iommu_pt_free(pt);
}

int main(void)
{
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        one_format(&cases[i]);
    return test_summary();
}
