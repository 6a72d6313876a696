/*
 * Every error row of docs/c-api.md, for every format: the return value, and the table's
 * walk unchanged afterwards (all-or-nothing `map`, partial `map_pages` undone by hand).
 */
#define _GNU_SOURCE
#include "test.h"

#include <fcntl.h>

/* ------------------------------------------------------------ configurations */

struct new_row {
    uint32_t format, ias, oas, granule;
    uint64_t pgsize_bitmap, flags;
    int expect;
};

#define SZ_4K 0x1000ULL
#define SZ_16K 0x4000ULL
#define SZ_64K 0x10000ULL
#define SZ_2M 0x200000ULL
#define SZ_32M 0x2000000ULL
#define SZ_512M 0x20000000ULL
#define SZ_1G 0x40000000ULL

static const struct new_row new_rows[] = {
    /* formats */
    { 0, 48, 48, 4096, 0, 0, -EINVAL },
    { 5, 48, 48, 4096, 0, 0, -EINVAL },
    { 0xffffffffu, 48, 48, 4096, 0, 0, -EINVAL },
    /* flags */
    { IOMMU_PT_FMT_VTD_SS, 48, 48, 4096, 0, 1, -EINVAL },
    { IOMMU_PT_FMT_ARM_S1, 48, 48, 4096, 0, 1ULL << 63, -EINVAL },
    /* VT-d second stage: ias 31..57, oas 1..52, granule 4096 */
    { IOMMU_PT_FMT_VTD_SS, 30, 48, 4096, 0, 0, -EINVAL },
    { IOMMU_PT_FMT_VTD_SS, 31, 48, 4096, 0, 0, 0 },
    { IOMMU_PT_FMT_VTD_SS, 39, 48, 4096, 0, 0, 0 },
    { IOMMU_PT_FMT_VTD_SS, 57, 48, 4096, 0, 0, 0 },
    { IOMMU_PT_FMT_VTD_SS, 58, 48, 4096, 0, 0, -EINVAL },
    { IOMMU_PT_FMT_VTD_SS, 64, 48, 4096, 0, 0, -EINVAL },
    { IOMMU_PT_FMT_VTD_SS, 48, 1, 4096, 0, 0, 0 },
    { IOMMU_PT_FMT_VTD_SS, 48, 12, 4096, 0, 0, 0 },
    { IOMMU_PT_FMT_VTD_SS, 48, 52, 4096, 0, 0, 0 },
    { IOMMU_PT_FMT_VTD_SS, 48, 53, 4096, 0, 0, -EINVAL },
    { IOMMU_PT_FMT_VTD_SS, 48, 48, 16384, 0, 0, -EINVAL },
    { IOMMU_PT_FMT_VTD_SS, 48, 48, 65536, 0, 0, -EINVAL },
    { IOMMU_PT_FMT_VTD_SS, 48, 48, 2048, 0, 0, -EINVAL },
    { IOMMU_PT_FMT_VTD_SS, 0, 0, 0, 0, 0, 0 },
    /* VT-d first stage: ias 48 or 57 */
    { IOMMU_PT_FMT_VTD_FS, 48, 48, 4096, 0, 0, 0 },
    { IOMMU_PT_FMT_VTD_FS, 57, 52, 4096, 0, 0, 0 },
    { IOMMU_PT_FMT_VTD_FS, 39, 48, 4096, 0, 0, -EINVAL },
    { IOMMU_PT_FMT_VTD_FS, 47, 48, 4096, 0, 0, -EINVAL },
    { IOMMU_PT_FMT_VTD_FS, 56, 48, 4096, 0, 0, -EINVAL },
    { IOMMU_PT_FMT_VTD_FS, 48, 53, 4096, 0, 0, -EINVAL },
    { IOMMU_PT_FMT_VTD_FS, 48, 3, 4096, 0, 0, 0 },
    { IOMMU_PT_FMT_VTD_FS, 48, 48, 16384, 0, 0, -EINVAL },
    /* Arm: ias/oas 32..48, 52 with 64K; granules 4K/16K/64K */
    { IOMMU_PT_FMT_ARM_S1, 31, 48, 4096, 0, 0, -EINVAL },
    { IOMMU_PT_FMT_ARM_S1, 32, 32, 4096, 0, 0, 0 },
    { IOMMU_PT_FMT_ARM_S1, 48, 31, 4096, 0, 0, -EINVAL },
    { IOMMU_PT_FMT_ARM_S1, 49, 48, 4096, 0, 0, -EINVAL },
    { IOMMU_PT_FMT_ARM_S1, 52, 52, 4096, 0, 0, -EINVAL },
    { IOMMU_PT_FMT_ARM_S1, 48, 52, 16384, 0, 0, -EINVAL },
    { IOMMU_PT_FMT_ARM_S1, 52, 52, 65536, 0, 0, 0 },
    { IOMMU_PT_FMT_ARM_S1, 53, 52, 65536, 0, 0, -EINVAL },
    { IOMMU_PT_FMT_ARM_S1, 48, 53, 65536, 0, 0, -EINVAL },
    { IOMMU_PT_FMT_ARM_S1, 48, 48, 8192, 0, 0, -EINVAL },
    { IOMMU_PT_FMT_ARM_S1, 48, 48, 32768, 0, 0, -EINVAL },
    { IOMMU_PT_FMT_ARM_S1, 0, 0, 0, 0, 0, 0 },
    { IOMMU_PT_FMT_ARM_S2, 31, 48, 4096, 0, 0, -EINVAL },
    { IOMMU_PT_FMT_ARM_S2, 32, 48, 4096, 0, 0, 0 },
    { IOMMU_PT_FMT_ARM_S2, 52, 52, 4096, 0, 0, -EINVAL },
    { IOMMU_PT_FMT_ARM_S2, 52, 52, 65536, 0, 0, 0 },
    { IOMMU_PT_FMT_ARM_S2, 48, 48, 16384, 0, 0, 0 },
    { IOMMU_PT_FMT_ARM_S2, 48, 48, 1, 0, 0, -EINVAL },
    /* pgsize_bitmap: must hold the granule and only leaf sizes */
    { IOMMU_PT_FMT_VTD_SS, 48, 48, 4096, SZ_4K, 0, 0 },
    { IOMMU_PT_FMT_VTD_SS, 48, 48, 4096, SZ_4K | SZ_1G, 0, 0 },
    { IOMMU_PT_FMT_VTD_SS, 48, 48, 4096, SZ_2M, 0, -EINVAL },
    { IOMMU_PT_FMT_VTD_SS, 48, 48, 4096, SZ_4K | SZ_64K, 0, -EINVAL },
    { IOMMU_PT_FMT_VTD_SS, 48, 48, 4096, SZ_4K | 0x2000, 0, -EINVAL },
    { IOMMU_PT_FMT_VTD_FS, 48, 48, 4096, SZ_4K | SZ_2M, 0, 0 },
    { IOMMU_PT_FMT_VTD_FS, 48, 48, 4096, SZ_1G, 0, -EINVAL },
    { IOMMU_PT_FMT_ARM_S1, 48, 48, 4096, SZ_4K | SZ_2M, 0, 0 },
    { IOMMU_PT_FMT_ARM_S1, 48, 48, 4096, SZ_4K | SZ_64K, 0, -EINVAL }, /* contiguous span */
    { IOMMU_PT_FMT_ARM_S1, 48, 48, 4096, SZ_2M | SZ_1G, 0, -EINVAL },
    { IOMMU_PT_FMT_ARM_S1, 48, 48, 16384, SZ_16K | SZ_32M, 0, 0 },
    { IOMMU_PT_FMT_ARM_S1, 48, 48, 16384, SZ_4K | SZ_16K, 0, -EINVAL },
    { IOMMU_PT_FMT_ARM_S2, 48, 48, 65536, SZ_64K | SZ_512M, 0, 0 },
    { IOMMU_PT_FMT_ARM_S2, 48, 48, 65536, SZ_64K | SZ_2M, 0, -EINVAL }, /* contiguous span */
    { IOMMU_PT_FMT_ARM_S2, 48, 48, 65536, SZ_4K | SZ_64K, 0, -EINVAL },
};

static void config_rows(void)
{
    for (size_t i = 0; i < sizeof(new_rows) / sizeof(new_rows[0]); i++) {
        const struct new_row *r = &new_rows[i];
        struct iommu_pt_config cfg = test_config(r->format, r->ias, r->oas, r->granule);
        cfg.pgsize_bitmap = r->pgsize_bitmap;
        cfg.flags = r->flags;
        struct iommu_pt *pt = NULL;
        int rc = iommu_pt_new(&cfg, &pt);
        CHECK_EQ(rc, r->expect, "row %zu: %s ias %u oas %u granule %u bitmap %#" PRIx64, i,
                 format_name(r->format), r->ias, r->oas, r->granule, r->pgsize_bitmap);
        if (rc == 0) {
            struct iommu_pt_info info;
            CHECK_EQ(iommu_pt_get_info(pt, &info), 0, "row %zu", i);
            if (r->pgsize_bitmap)
                CHECK_EQ(info.pgsize_bitmap, r->pgsize_bitmap, "row %zu", i);
            CHECK_EQ(info.ias, r->ias ? r->ias : 48, "row %zu", i);
            CHECK_EQ(info.oas, r->oas ? r->oas : 48, "row %zu", i);
            iommu_pt_free(pt);
        } else {
            CHECK(pt == NULL, "row %zu: *out written on failure", i);
        }
    }

    struct iommu_pt_config cfg = test_config(IOMMU_PT_FMT_VTD_SS, 48, 48, 4096);
    struct iommu_pt *pt = NULL;
    CHECK_EQ(iommu_pt_new(NULL, &pt), -EINVAL, "NULL config");
    CHECK_EQ(iommu_pt_new(&cfg, NULL), -EINVAL, "NULL out");

    /* mem_ops with a missing callback */
    struct counting_mem mem;
    counting_mem_init(&mem);
    struct iommu_pt_mem_ops partial = counting_ops;
    partial.phys_to_virt = NULL;
    cfg.mem = &partial;
    cfg.mem_ctx = &mem;
    CHECK_EQ(iommu_pt_new(&cfg, &pt), -EINVAL, "mem_ops without phys_to_virt");
    partial = counting_ops;
    partial.alloc = NULL;
    CHECK_EQ(iommu_pt_new(&cfg, &pt), -EINVAL, "mem_ops without alloc");
    /* no memory for the top table */
    cfg.mem = &counting_ops;
    mem.fail_after = 0;
    CHECK_EQ(iommu_pt_new(&cfg, &pt), -ENOMEM, "root allocation fails");
    CHECK_EQ(mem.allocs, 0, "nothing allocated");
    counting_mem_destroy(&mem);

    /* A VT-d output size below a page builds, but no mapping fits. */
    cfg = test_config(IOMMU_PT_FMT_VTD_SS, 48, 11, 4096);
    CHECK_EQ(iommu_pt_new(&cfg, &pt), 0, "oas 11");
    CHECK_EQ(iommu_pt_map_pages(pt, 0, 0, 4096, 1, IOMMU_PT_READ, NULL), -ERANGE, "oas 11");
    CHECK_EQ(iommu_pt_map(pt, 0, 0, 4096, IOMMU_PT_READ), -ERANGE, "oas 11");
    CHECK_EQ(iommu_pt_map_pages(pt, 0, 0, 4096, 1, 0, NULL), -EINVAL, "oas 11");
    iommu_pt_free(pt);

    iommu_pt_free(NULL); /* no-op */
    CHECK(iommu_pt_version() != NULL && strchr(iommu_pt_version(), '.') != NULL, "version");
}

/* ---------------------------------------------------------------- table rows */

struct table_case {
    uint32_t format, ias, oas, granule;
};

static const struct table_case cases[] = {
    { IOMMU_PT_FMT_VTD_SS, 48, 48, 4096 },
    { IOMMU_PT_FMT_VTD_SS, 39, 40, 4096 },
    { IOMMU_PT_FMT_VTD_FS, 48, 46, 4096 },
    { IOMMU_PT_FMT_ARM_S1, 48, 48, 4096 },
    { IOMMU_PT_FMT_ARM_S1, 40, 44, 65536 },
    { IOMMU_PT_FMT_ARM_S2, 40, 44, 16384 },
    { IOMMU_PT_FMT_ARM_S2, 48, 48, 4096 },
};

static int stop_with(void *arg, const struct iommu_pt_translation *t)
{
    int *seen = arg;
    (void)t;
    (*seen)++;
    return *seen == 1 ? 7 : -42;
}

static int stop_second(void *arg, const struct iommu_pt_translation *t)
{
    int *seen = arg;
    (void)t;
    return ++*seen == 2 ? -42 : 0;
}

static void table_rows(const struct table_case *tc)
{
    char name[64];
    snprintf(name, sizeof(name), "%s ias %u oas %u granule %u", format_name(tc->format), tc->ias,
             tc->oas, tc->granule);
    struct counting_mem mem;
    counting_mem_init(&mem);
    struct iommu_pt_config cfg = test_config(tc->format, tc->ias, tc->oas, tc->granule);
    cfg.mem = &counting_ops;
    cfg.mem_ctx = &mem;
    struct iommu_pt *pt = NULL;
    if (iommu_pt_new(&cfg, &pt) != 0) {
        CHECK(0, "%s: create", name);
        return;
    }
    struct iommu_pt_info info;
    iommu_pt_get_info(pt, &info);
    const uint64_t g = info.granule, limit = input_limit(&info), oas_end = 1ULL << info.oas;
    uint64_t big = info.pgsize_bitmap & ~g;
    big &= -big;                    /* second page size */
    const uint64_t span = g * (g / 8); /* what one last-level table maps */
    const uint32_t rw = IOMMU_PT_READ | IOMMU_PT_WRITE;
    const uint64_t A = 16 * g, B = 2 * big, F = 4 * big; /* F: free space */
    uint64_t mapped;
    struct leaves before, after;
    struct iommu_pt_translation t;

    /* The baseline: 4 small pages at A, one large leaf at B. */
    CHECK_EQ(iommu_pt_map_pages(pt, A, 0x40 * g, g, 4, rw, NULL), 0, "%s", name);
    CHECK_EQ(iommu_pt_map_pages(pt, B, 3 * big, big, 1, rw, NULL), 0, "%s", name);
    CHECK_EQ(snapshot(pt, &before), 0, "%s", name);
    CHECK_EQ(before.n, 5, "%s", name);

#define UNCHANGED(what)                                                                   \
    do {                                                                                  \
        snapshot(pt, &after);                                                             \
        CHECK(same_leaves(&before, &after), "%s: walk changed after %s", name, what);     \
    } while (0)

#define MAP_PAGES_ROW(iova, pa, size, count, prot, expect)                                \
    do {                                                                                  \
        mapped = 777;                                                                     \
        CHECK_EQ(iommu_pt_map_pages(pt, iova, pa, size, count, prot, &mapped), expect,    \
                 "%s: map_pages(%s, %s, %s, %s, %s)", name, #iova, #pa, #size, #count, #prot); \
        CHECK_EQ(mapped, 0, "%s: mapped", name);                                          \
        UNCHANGED("map_pages(" #iova ", " #pa ", " #size ", " #count ", " #prot ")");     \
    } while (0)

    /* map_pages: -EINVAL rows */
    MAP_PAGES_ROW(F, 0, 0, 1, rw, -EINVAL);
    MAP_PAGES_ROW(F, 0, 3 * g, 1, rw, -EINVAL);
    MAP_PAGES_ROW(F, 0, 2 * g, 1, rw, -EINVAL);
    MAP_PAGES_ROW(F, 0, g / 2, 1, rw, -EINVAL);
    MAP_PAGES_ROW(F, 0, g << 1 << 1 << 1 << 1 << 1, 1, rw, -EINVAL);
    MAP_PAGES_ROW(F + g / 2, 0, g, 1, rw, -EINVAL);
    MAP_PAGES_ROW(F, g / 2, g, 1, rw, -EINVAL);
    MAP_PAGES_ROW(F + g, 0, big, 1, rw, -EINVAL);
    MAP_PAGES_ROW(F, g, big, 1, rw, -EINVAL);
    MAP_PAGES_ROW(F, 0, g, 1, 0, -EINVAL);
    MAP_PAGES_ROW(F, 0, g, 1, IOMMU_PT_CACHE, -EINVAL);
    MAP_PAGES_ROW(F, 0, g, 1, IOMMU_PT_NOEXEC | IOMMU_PT_PRIV | IOMMU_PT_MMIO, -EINVAL);
    MAP_PAGES_ROW(F, 0, g, 1, IOMMU_PT_READ | 64, -EINVAL);
    MAP_PAGES_ROW(F, 0, g, 1, IOMMU_PT_WRITE | 0x80000000u, -EINVAL);
    /* pgcount 0 maps nothing */
    MAP_PAGES_ROW(F, 0, g, 0, rw, 0);
    /* -ERANGE rows */
    MAP_PAGES_ROW(limit, 0, g, 1, rw, -ERANGE);
    MAP_PAGES_ROW(limit - g, 0, g, 2, rw, -ERANGE);
    MAP_PAGES_ROW(limit - g, 0, g, UINT64_MAX / g + 2, rw, -ERANGE);
    MAP_PAGES_ROW(F, 0, g, UINT64_MAX / 2, rw, -ERANGE);
    MAP_PAGES_ROW(UINT64_MAX - g + 1, 0, g, 1, rw, -ERANGE);
    MAP_PAGES_ROW(F, oas_end, g, 1, rw, -ERANGE);
    MAP_PAGES_ROW(F, oas_end - g, g, 2, rw, -ERANGE);
    MAP_PAGES_ROW(F, UINT64_MAX - g + 1, g, 1, rw, -ERANGE);
    if (info.format == IOMMU_PT_FMT_VTD_FS)
        MAP_PAGES_ROW(1ULL << (info.ias - 1), 0, g, 1, rw, -ERANGE); /* upper half */
    /* -EEXIST: over a leaf, and a start inside a larger leaf */
    MAP_PAGES_ROW(A, 0, g, 1, rw, -EEXIST);
    MAP_PAGES_ROW(A + 3 * g, 0, g, 1, rw, -EEXIST);
    MAP_PAGES_ROW(B + g, 0, g, 1, rw, -EEXIST);
    MAP_PAGES_ROW(B, 0, big, 1, rw, -EEXIST);
    MAP_PAGES_ROW(0, 0, big, 1, rw, -EEXIST); /* a table holding A's leaves is in the way */
    /* -EEXIST part way: the pages before the leaf stay mapped and are reported. */
    mapped = 0;
    CHECK_EQ(iommu_pt_map_pages(pt, A - 2 * g, 0x80 * g, g, 4, rw, &mapped), -EEXIST, "%s",
             name);
    CHECK_EQ(mapped, 2 * g, "%s", name);
    CHECK_EQ(iommu_pt_iova_to_phys(pt, A - g), 0x81 * g, "%s", name);
    CHECK_EQ(iommu_pt_iova_to_phys(pt, A), 0x40 * g, "%s: the existing leaf is kept", name);
    CHECK_EQ(iommu_pt_unmap(pt, A - 2 * g, 2 * g, NULL), 2 * g, "%s", name);
    UNCHANGED("map_pages -EEXIST part way");
    /* -ENOMEM: no page for a new table; part way across a table boundary. */
    mem.fail_after = 0;
    MAP_PAGES_ROW(F, 0, g, 1, rw, -ENOMEM);
    mapped = 0;
    CHECK_EQ(iommu_pt_map_pages(pt, span - 2 * g, 0, g, 4, rw, &mapped), -ENOMEM, "%s", name);
    CHECK_EQ(mapped, 2 * g, "%s", name);
    CHECK_EQ(iommu_pt_unmap(pt, span - 2 * g, 2 * g, NULL), 2 * g, "%s", name);
    UNCHANGED("map_pages -ENOMEM part way");
    mem.fail_after = -1;
    /* NULL table */
    CHECK_EQ(iommu_pt_map_pages(NULL, F, 0, g, 1, rw, NULL), -EINVAL, "%s", name);

#define MAP_ROW(iova, pa, len, prot, expect)                                              \
    do {                                                                                  \
        CHECK_EQ(iommu_pt_map(pt, iova, pa, len, prot), expect, "%s: map(%s, %s, %s, %s)", \
                 name, #iova, #pa, #len, #prot);                                          \
        UNCHANGED("map(" #iova ", " #pa ", " #len ", " #prot ")");                        \
    } while (0)

    MAP_ROW(F, 0, 0, rw, 0);
    MAP_ROW(F + g / 2, 0, g, rw, -EINVAL);
    MAP_ROW(F, g / 2, g, rw, -EINVAL);
    MAP_ROW(F, 0, g / 2, rw, -EINVAL);
    MAP_ROW(F, 0, g + 8, rw, -EINVAL);
    MAP_ROW(F, 0, g, 0, -EINVAL);
    MAP_ROW(F, 0, g, IOMMU_PT_NOEXEC, -EINVAL);
    MAP_ROW(F, 0, g, IOMMU_PT_READ | 0x100, -EINVAL);
    MAP_ROW(limit - g, 0, 2 * g, rw, -ERANGE);
    MAP_ROW(limit, 0, g, rw, -ERANGE);
    MAP_ROW(F, oas_end - g, 2 * g, rw, -ERANGE);
    MAP_ROW(F, oas_end, g, rw, -ERANGE);
    /* all or nothing: the pages before A are not left mapped */
    MAP_ROW(A - 2 * g, 0, 4 * g, rw, -EEXIST);
    MAP_ROW(B - g, 0, 2 * g, rw, -EEXIST);
    MAP_ROW(B - big, 0, 2 * big, rw, -EEXIST);
    mem.fail_after = 0;
    MAP_ROW(F, 0, g, rw, -ENOMEM);
    MAP_ROW(span - 2 * g, 0, 4 * g, rw, -ENOMEM);
    mem.fail_after = -1;
    CHECK_EQ(iommu_pt_map(NULL, F, 0, g, rw), -EINVAL, "%s", name);

#define UNMAP_ROW(expr)                                                                   \
    do {                                                                                  \
        CHECK_EQ(expr, 0, "%s: %s", name, #expr);                                         \
        UNCHANGED(#expr);                                                                 \
    } while (0)

    UNMAP_ROW(iommu_pt_unmap_pages(pt, B + g, g, 1, NULL));     /* inside a larger leaf */
    UNMAP_ROW(iommu_pt_unmap(pt, B + g, g, NULL));
    UNMAP_ROW(iommu_pt_unmap(pt, B + big - g, g, NULL));
    UNMAP_ROW(iommu_pt_unmap(pt, A - g, 2 * g, NULL));          /* hole at the start */
    UNMAP_ROW(iommu_pt_unmap_pages(pt, F, g, 1, NULL));
    UNMAP_ROW(iommu_pt_unmap_pages(pt, A + g / 2, g, 1, NULL)); /* misaligned */
    UNMAP_ROW(iommu_pt_unmap(pt, A + 8, g, NULL));
    UNMAP_ROW(iommu_pt_unmap_pages(pt, B, big, 0, NULL));
    UNMAP_ROW(iommu_pt_unmap_pages(pt, A, 3 * g, 1, NULL));     /* size not in the bitmap */
    UNMAP_ROW(iommu_pt_unmap_pages(pt, A, 0, 1, NULL));
    UNMAP_ROW(iommu_pt_unmap_pages(pt, A, 2 * g, 1, NULL));
    UNMAP_ROW(iommu_pt_unmap(pt, A, g + g / 2, NULL));          /* not a granule multiple */
    UNMAP_ROW(iommu_pt_unmap(pt, A, g / 2, NULL));
    UNMAP_ROW(iommu_pt_unmap(pt, A, 0, NULL));
    UNMAP_ROW(iommu_pt_unmap(pt, limit, g, NULL));              /* beyond ias */
    UNMAP_ROW(iommu_pt_unmap(pt, limit - g, 2 * g, NULL));
    UNMAP_ROW(iommu_pt_unmap(pt, A, UINT64_MAX - g + 1, NULL));
    UNMAP_ROW(iommu_pt_unmap_pages(pt, A, g, UINT64_MAX / 2, NULL));
    UNMAP_ROW(iommu_pt_unmap(NULL, A, g, NULL));
    UNMAP_ROW(iommu_pt_unmap_pages(NULL, A, g, 1, NULL));

    /* translate / iova_to_phys */
    CHECK_EQ(iommu_pt_translate(pt, F, &t), -ENOENT, "%s", name);
    CHECK_EQ(iommu_pt_translate(pt, A + 4 * g, &t), -ENOENT, "%s", name);
    CHECK_EQ(iommu_pt_translate(pt, limit, &t), -ERANGE, "%s", name);
    CHECK_EQ(iommu_pt_translate(pt, UINT64_MAX, &t), -ERANGE, "%s", name);
    CHECK_EQ(iommu_pt_translate(pt, A, NULL), -EINVAL, "%s", name);
    CHECK_EQ(iommu_pt_translate(NULL, A, &t), -EINVAL, "%s", name);
    CHECK_EQ(iommu_pt_translate(pt, limit - 1, &t), -ENOENT, "%s", name);
    CHECK_EQ(iommu_pt_iova_to_phys(pt, limit), 0, "%s", name);
    CHECK_EQ(iommu_pt_iova_to_phys(pt, F), 0, "%s", name);
    CHECK_EQ(iommu_pt_iova_to_phys(NULL, A), 0, "%s", name);
    UNCHANGED("translate");

    /* walk */
    int seen = 0;
    CHECK_EQ(iommu_pt_walk(pt, limit, 1, stop_with, &seen), -ERANGE, "%s", name);
    CHECK_EQ(iommu_pt_walk(pt, limit - g, 2 * g, stop_with, &seen), -ERANGE, "%s", name);
    CHECK_EQ(iommu_pt_walk(pt, 1, UINT64_MAX, stop_with, &seen), -ERANGE, "%s", name);
    CHECK_EQ(seen, 0, "%s", name);
    struct leaves part;
    memset(&part, 0, sizeof(part));
    CHECK_EQ(iommu_pt_walk(pt, 0, limit, collect_leaf, &part), 0, "%s: up to 2^ias", name);
    CHECK(same_leaves(&before, &part), "%s: walk to 2^ias sees every leaf", name);
    CHECK_EQ(iommu_pt_walk(pt, limit - g, g, stop_with, &seen), 0, "%s", name);
    CHECK_EQ(iommu_pt_walk(pt, 0, 0, NULL, NULL), -EINVAL, "%s", name);
    CHECK_EQ(iommu_pt_walk(NULL, 0, 0, stop_with, &seen), -EINVAL, "%s", name);
    CHECK_EQ(seen, 0, "%s", name);
    CHECK_EQ(iommu_pt_walk(pt, 0, 0, stop_with, &seen), 7, "%s: non-zero stops", name);
    CHECK_EQ(seen, 1, "%s", name);
    seen = 0;
    CHECK_EQ(iommu_pt_walk(pt, 0, 0, stop_second, &seen), -42, "%s", name);
    CHECK_EQ(seen, 2, "%s", name);
    memset(&part, 0, sizeof(part));
    CHECK_EQ(iommu_pt_walk(pt, A + g, g, collect_leaf, &part), 0, "%s", name);
    CHECK_EQ(part.n, 1, "%s", name);
    CHECK_EQ(part.v[0].iova, A + g, "%s", name);
    memset(&part, 0, sizeof(part));
    CHECK_EQ(iommu_pt_walk(pt, B + g, g, collect_leaf, &part), 0, "%s", name);
    CHECK_EQ(part.n, 1, "%s: a leaf intersecting the range", name);
    CHECK_EQ(part.v[0].iova, B, "%s", name);
    UNCHANGED("walk");

    /* dump */
    CHECK_EQ(iommu_pt_dump(pt, -1), -EBADF, "%s", name);
    CHECK_EQ(iommu_pt_dump(NULL, 1), -EINVAL, "%s", name);
    int fds[2];
    if (pipe(fds) == 0) {
        /* A pipe holds this small table's dump in one go. */
        CHECK_EQ(iommu_pt_dump(pt, fds[1]), 0, "%s", name);
        close(fds[1]);
        char text[4096] = { 0 };
        ssize_t n = read(fds[0], text, sizeof(text) - 1);
        close(fds[0]);
        CHECK(n > 0 && text[0] == '#', "%s: dump starts with a comment line", name);
        int lines = 0;
        for (ssize_t i = 0; i < n; i++)
            lines += text[i] == '\n';
        CHECK_EQ(lines, 2 + 5, "%s: header, level names, one line per leaf", name);
    }
    int rdonly = open("/dev/null", O_RDONLY);
    CHECK_EQ(iommu_pt_dump(pt, rdonly), -EBADF, "%s: a descriptor not open for writing", name);
    close(rdonly);
    UNCHANGED("dump");

    /* info */
    CHECK_EQ(iommu_pt_get_info(pt, NULL), -EINVAL, "%s", name);
    CHECK_EQ(iommu_pt_get_info(NULL, &info), -EINVAL, "%s", name);

    /* gathers */
    struct iommu_pt_gather *gth = iommu_pt_gather_new();
    uint64_t s = 0, l = 0;
    CHECK_EQ(iommu_pt_gather_range(gth, &s, &l), -ENOENT, "%s", name);
    CHECK_EQ(iommu_pt_gather_range(gth, NULL, &l), -EINVAL, "%s", name);
    CHECK_EQ(iommu_pt_gather_range(gth, &s, NULL), -EINVAL, "%s", name);
    CHECK_EQ(iommu_pt_gather_range(NULL, &s, &l), -EINVAL, "%s", name);
    CHECK_EQ(iommu_pt_gather_freed_tables(gth), 0, "%s", name);
    CHECK_EQ(iommu_pt_gather_freed_tables(NULL), 0, "%s", name);
    CHECK_EQ(iommu_pt_unmap(pt, A - g, 2 * g, gth), 0, "%s", name);
    CHECK_EQ(iommu_pt_gather_range(gth, &s, &l), -ENOENT, "%s: nothing unmapped", name);
    iommu_pt_gather_release(NULL);
    iommu_pt_gather_free(NULL);
    iommu_pt_gather_free(gth);
    UNCHANGED("gathers");

    /* Everything unmaps, and every page comes back. */
    CHECK_EQ(iommu_pt_unmap(pt, A, 4 * g, NULL), 4 * g, "%s", name);
    CHECK_EQ(iommu_pt_unmap_pages(pt, B, big, 1, NULL), big, "%s", name);
    snapshot(pt, &after);
    CHECK_EQ(after.n, 0, "%s", name);
    iommu_pt_free(pt);
    CHECK_EQ(mem.allocs, mem.frees, "%s", name);
    CHECK_EQ(mem.bad_frees, 0, "%s", name);
    CHECK_EQ(mem.bad_p2v, 0, "%s", name);
    counting_mem_destroy(&mem);
}

/* ------------------------------------------------- what the errors say */

static void messages(void)
{
    /* iommu_pt_strerror: either sign, never NULL, a distinct text per errno. */
    CHECK(strcmp(iommu_pt_strerror(0), "success") == 0, "strerror(0)");
    CHECK(strcmp(iommu_pt_strerror(-EINVAL), iommu_pt_strerror(EINVAL)) == 0, "either sign");
    CHECK(strstr(iommu_pt_strerror(-EINVAL), "invalid argument") != NULL, "EINVAL text");
    CHECK(strcmp(iommu_pt_strerror(-ENOENT), iommu_pt_strerror(-EINVAL)) != 0, "distinct");
    CHECK(strcmp(iommu_pt_strerror(-12345), "unknown error") == 0, "unknown errno");

    /* iommu_pt_last_error: the detail of this thread's last failure. */
    struct iommu_pt_config cfg = { .format = 99 };
    struct iommu_pt *pt = NULL;
    CHECK(iommu_pt_new(&cfg, &pt) == -EINVAL && pt == NULL, "bad format");
    CHECK(strcmp(iommu_pt_last_error(), "unknown format") == 0, "last: %s", iommu_pt_last_error());

    cfg.format = IOMMU_PT_FMT_ARM_S1;
    CHECK(iommu_pt_new(&cfg, &pt) == 0, "new");
    uint64_t mapped = 0;
    int r = iommu_pt_map_pages(pt, 0x1000, 0x1234, 0x1000, 1, IOMMU_PT_READ, &mapped);
    CHECK(r == -EINVAL, "misaligned paddr: %d", r);
    CHECK(strcmp(iommu_pt_last_error(), "paddr 0x1234 is not aligned to 0x1000") == 0,
          "last: %s", iommu_pt_last_error());
    /* A success leaves it; the next failure replaces it. */
    CHECK(iommu_pt_map_pages(pt, 0x1000, 0x2000, 0x1000, 1, IOMMU_PT_READ, &mapped) == 0, "map");
    CHECK(strstr(iommu_pt_last_error(), "not aligned") != NULL, "kept after success");
    r = iommu_pt_map_pages(pt, 0x1000, 0x2000, 0x1000, 1, IOMMU_PT_READ, &mapped);
    CHECK(r == -EEXIST, "remap: %d", r);
    CHECK(strstr(iommu_pt_last_error(), "already mapped") != NULL, "last: %s",
          iommu_pt_last_error());
    r = iommu_pt_map_pages(pt, 0x3000, 0x3000, 0x1000, 1, 0x400, &mapped);
    CHECK(r == -EINVAL && strcmp(iommu_pt_last_error(), "unknown prot bits") == 0,
          "bad prot: %d %s", r, iommu_pt_last_error());
    /* Address 0 vs unmapped: iova_to_phys says 0 for both, translate tells them apart. */
    CHECK(iommu_pt_map_pages(pt, 0x8000, 0, 0x1000, 1, IOMMU_PT_READ, &mapped) == 0, "map 0");
    struct iommu_pt_translation t;
    CHECK(iommu_pt_iova_to_phys(pt, 0x8000) == 0 && iommu_pt_iova_to_phys(pt, 0x9000) == 0,
          "both read 0");
    CHECK(iommu_pt_translate(pt, 0x8000, &t) == 0 && t.paddr == 0, "mapped to 0");
    CHECK(iommu_pt_translate(pt, 0x9000, &t) == -ENOENT, "unmapped");
    iommu_pt_free(pt);
}

int main(void)
{
    messages();
    config_rows();
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        table_rows(&cases[i]);
    return test_summary();
}
