/*
 * Kernel-selftest-style sweep over every format and configuration: an empty table
 * translates nothing; for each page size: map, double map (-EEXIST), translate,
 * iova_to_phys, walk, unmap returns the size, translation gone, remap; permissions
 * round-trip; `map` picks the large size. Each configuration runs over host memory
 * and over counting mem_ops (physical != virtual), which must get every page back.
 */
#define _GNU_SOURCE
#include "test.h"

struct sweep_cfg {
    uint32_t format, ias, oas, granule;
};

static const struct sweep_cfg configs[] = {
    { IOMMU_PT_FMT_VTD_SS, 39, 48, 4096 },
    { IOMMU_PT_FMT_VTD_SS, 48, 48, 4096 },
    { IOMMU_PT_FMT_VTD_SS, 57, 52, 4096 },
    { IOMMU_PT_FMT_VTD_SS, 31, 39, 0 },
    { IOMMU_PT_FMT_VTD_FS, 48, 48, 4096 },
    { IOMMU_PT_FMT_VTD_FS, 57, 46, 4096 },
    { IOMMU_PT_FMT_ARM_S1, 32, 32, 4096 },
    { IOMMU_PT_FMT_ARM_S1, 39, 40, 4096 },
    { IOMMU_PT_FMT_ARM_S1, 48, 48, 4096 },
    { IOMMU_PT_FMT_ARM_S1, 36, 44, 16384 },
    { IOMMU_PT_FMT_ARM_S1, 47, 48, 16384 },
    { IOMMU_PT_FMT_ARM_S1, 42, 48, 65536 },
    { IOMMU_PT_FMT_ARM_S1, 52, 52, 65536 },
    { IOMMU_PT_FMT_ARM_S2, 32, 32, 4096 },
    { IOMMU_PT_FMT_ARM_S2, 40, 48, 4096 },
    { IOMMU_PT_FMT_ARM_S2, 48, 48, 4096 },
    { IOMMU_PT_FMT_ARM_S2, 40, 42, 16384 },
    { IOMMU_PT_FMT_ARM_S2, 48, 48, 16384 },
    { IOMMU_PT_FMT_ARM_S2, 48, 48, 65536 },
    { IOMMU_PT_FMT_ARM_S2, 52, 52, 65536 },
};

struct count {
    uint64_t n;
    struct iommu_pt_translation first;
};

static int count_leaf(void *arg, const struct iommu_pt_translation *t)
{
    struct count *c = arg;
    if (c->n++ == 0)
        c->first = *t;
    return 0;
}

static uint32_t log2u(uint64_t v)
{
    return 63 - (uint32_t)__builtin_clzll(v);
}

/* A multiple of `size` at which `size` fits below `limit`, away from 0 when possible. */
static uint64_t place(uint64_t size, uint64_t limit, uint64_t k)
{
    while (k > 0 && (size > limit / (k + 1)))
        k--;
    return size * k;
}

/* The smallest IPS / S2PS encoding covering `oas` bits. */
static uint64_t ps_encoding(uint32_t oas)
{
    static const uint32_t bits[] = { 32, 36, 40, 42, 44, 48, 52 };
    for (uint64_t i = 0; i < 7; i++)
        if (bits[i] >= oas)
            return i;
    return 7;
}

static uint64_t tg_encoding(uint32_t granule)
{
    return granule == 4096 ? 0 : granule == 65536 ? 1 : 2;
}

/* The register words a driver programs (docs/c-api.md `regs`). */
static void registers(const struct iommu_pt_info *info, const char *name)
{
    CHECK_EQ(info->regs[0], info->root_phys, "%s", name);
    CHECK_EQ(info->regs[3], 0, "%s: unused", name);
    switch (info->format) {
    case IOMMU_PT_FMT_VTD_SS:
        CHECK_EQ(info->regs[1], info->ias <= 39 ? 1 : info->ias <= 48 ? 2 : 3, "%s: AW", name);
        CHECK_EQ(info->regs[2], 0, "%s: unused", name);
        break;
    case IOMMU_PT_FMT_VTD_FS:
        CHECK_EQ(info->regs[1], info->levels, "%s: 4 or 5 levels", name);
        CHECK_EQ(info->regs[2], 0, "%s: unused", name);
        break;
    case IOMMU_PT_FMT_ARM_S1: {
        uint64_t tcr = info->regs[1];
        CHECK_EQ(tcr & ~0x700003fffULL, 0, "%s: only T0SZ TG0 IRGN0 ORGN0 SH0 IPS", name);
        CHECK_EQ(tcr & 0x3f, 64 - info->ias, "%s: T0SZ", name);
        CHECK_EQ((tcr >> 6) & 3, tg_encoding(info->granule), "%s: TG0", name);
        CHECK_EQ((tcr >> 32) & 7, ps_encoding(info->oas), "%s: IPS", name);
        CHECK(info->regs[2] != 0, "%s: MAIR", name);
        break;
    }
    case IOMMU_PT_FMT_ARM_S2: {
        uint64_t vtcr = info->regs[1];
        CHECK_EQ(vtcr >> 19, 0, "%s: a 19-bit field", name);
        CHECK_EQ(vtcr & 0x3f, 64 - info->ias, "%s: S2T0SZ", name);
        CHECK_EQ((vtcr >> 14) & 3, tg_encoding(info->granule), "%s: S2TG", name);
        CHECK_EQ((vtcr >> 16) & 7, ps_encoding(info->oas), "%s: S2PS", name);
        CHECK_EQ(info->regs[2], 0, "%s: unused", name);
        break;
    }
    }
}

static void empty_table_translates_nothing(struct iommu_pt *pt, const struct iommu_pt_info *info,
                                           const char *name)
{
    struct iommu_pt_translation t;
    uint64_t top = input_limit(info) - 1;
    CHECK_EQ(iommu_pt_translate(pt, 0, &t), -ENOENT, "%s", name);
    CHECK_EQ(iommu_pt_translate(pt, top, &t), -ENOENT, "%s", name);
    CHECK_EQ(iommu_pt_iova_to_phys(pt, 0), 0, "%s", name);
    CHECK_EQ(iommu_pt_iova_to_phys(pt, top), 0, "%s", name);
    struct count c = { 0 };
    CHECK_EQ(iommu_pt_walk(pt, 0, 0, count_leaf, &c), 0, "%s", name);
    CHECK_EQ(c.n, 0, "%s", name);
}

static void one_page_size(struct iommu_pt *pt, const struct iommu_pt_info *info, uint64_t size,
                          const char *name)
{
    uint64_t iova = place(size, input_limit(info), 3);
    uint64_t pa = info->oas >= 64 ? size * 5 : place(size, 1ULL << info->oas, 5);
    uint32_t prot = IOMMU_PT_READ | IOMMU_PT_WRITE | IOMMU_PT_CACHE;
    uint64_t off = size / 2 + 0x18, mapped = 12345;
    struct iommu_pt_translation t;

    CHECK_EQ(iommu_pt_translate(pt, iova + off, &t), -ENOENT, "%s size %#" PRIx64, name, size);
    CHECK_EQ(iommu_pt_map_pages(pt, iova, pa, size, 1, prot, &mapped), 0, "%s size %#" PRIx64,
             name, size);
    CHECK_EQ(mapped, size, "%s", name);
    CHECK_EQ(iommu_pt_map_pages(pt, iova, pa, size, 1, prot, &mapped), -EEXIST,
             "%s size %#" PRIx64, name, size);
    CHECK_EQ(mapped, 0, "%s", name);

    memset(&t, 0, sizeof(t));
    CHECK_EQ(iommu_pt_translate(pt, iova + off, &t), 0, "%s size %#" PRIx64, name, size);
    CHECK_EQ(t.iova, iova + off, "%s", name);
    CHECK_EQ(t.paddr, pa + off, "%s", name);
    CHECK_EQ(t.size, size, "%s", name);
    CHECK_EQ(t.level, (log2u(size) - log2u(info->granule)) / (log2u(info->granule) - 3), "%s",
             name);
    CHECK((t.prot & (IOMMU_PT_READ | IOMMU_PT_WRITE)) == (IOMMU_PT_READ | IOMMU_PT_WRITE),
          "%s prot %#x", name, t.prot);
    CHECK_EQ(iommu_pt_iova_to_phys(pt, iova + off), pa + off, "%s", name);
    CHECK_EQ(iommu_pt_iova_to_phys(pt, iova + size - 1), pa + size - 1, "%s", name);
    if (iova + size < input_limit(info))
        CHECK_EQ(iommu_pt_iova_to_phys(pt, iova + size), 0, "%s", name);

    struct count c = { 0 };
    CHECK_EQ(iommu_pt_walk(pt, 0, 0, count_leaf, &c), 0, "%s", name);
    CHECK_EQ(c.n, 1, "%s", name);
    CHECK_EQ(c.first.iova, iova, "%s", name);
    CHECK_EQ(c.first.paddr, pa, "%s", name);
    CHECK_EQ(c.first.size, size, "%s", name);

    CHECK_EQ(iommu_pt_unmap_pages(pt, iova, size, 1, NULL), size, "%s size %#" PRIx64, name,
             size);
    CHECK_EQ(iommu_pt_translate(pt, iova + off, &t), -ENOENT, "%s", name);
    CHECK_EQ(iommu_pt_iova_to_phys(pt, iova + off), 0, "%s", name);

    /* Remap, then unmap through a gather. */
    CHECK_EQ(iommu_pt_map_pages(pt, iova, pa, size, 1, prot, NULL), 0, "%s remap", name);
    CHECK_EQ(iommu_pt_iova_to_phys(pt, iova), pa, "%s", name);
    struct iommu_pt_gather *g = iommu_pt_gather_new();
    CHECK(g != NULL, "%s", name);
    CHECK_EQ(iommu_pt_unmap(pt, iova, size, g), size, "%s", name);
    uint64_t start = 1, last = 0;
    CHECK_EQ(iommu_pt_gather_range(g, &start, &last), 0, "%s", name);
    CHECK(start <= iova && last >= iova + size - 1, "%s range %#" PRIx64 "..%#" PRIx64, name,
          start, last);
    iommu_pt_gather_free(g);
    CHECK_EQ(iommu_pt_iova_to_phys(pt, iova), 0, "%s", name);
}

static void several_granules(struct iommu_pt *pt, const struct iommu_pt_info *info,
                             const char *name)
{
    uint64_t g = info->granule, mapped = 0;
    uint64_t iova = 7 * g;
    CHECK_EQ(iommu_pt_map_pages(pt, iova, g, g, 3, IOMMU_PT_READ, &mapped), 0, "%s", name);
    CHECK_EQ(mapped, 3 * g, "%s", name);
    for (uint64_t i = 0; i < 3; i++)
        CHECK_EQ(iommu_pt_iova_to_phys(pt, iova + i * g + 5), g + i * g + 5, "%s", name);
    CHECK_EQ(iommu_pt_unmap_pages(pt, iova, g, 3, NULL), 3 * g, "%s", name);
}

static void permissions_round_trip(struct iommu_pt *pt, const struct iommu_pt_info *info,
                                   const char *name)
{
    static const uint32_t prots[] = {
        IOMMU_PT_READ,
        IOMMU_PT_WRITE,
        IOMMU_PT_READ | IOMMU_PT_WRITE,
        IOMMU_PT_READ | IOMMU_PT_CACHE,
        IOMMU_PT_READ | IOMMU_PT_WRITE | IOMMU_PT_NOEXEC,
        IOMMU_PT_READ | IOMMU_PT_PRIV,
        IOMMU_PT_READ | IOMMU_PT_WRITE | IOMMU_PT_MMIO,
        IOMMU_PT_READ | IOMMU_PT_WRITE | IOMMU_PT_CACHE | IOMMU_PT_NOEXEC | IOMMU_PT_PRIV,
    };
    uint64_t g = info->granule;
    for (size_t i = 0; i < sizeof(prots) / sizeof(prots[0]); i++) {
        uint64_t iova = (16 + i) * g;
        struct iommu_pt_translation t;
        CHECK_EQ(iommu_pt_map_pages(pt, iova, iova, g, 1, prots[i], NULL), 0, "%s prot %#x",
                 name, prots[i]);
        CHECK_EQ(iommu_pt_translate(pt, iova, &t), 0, "%s", name);
        uint32_t rw = prots[i] & (IOMMU_PT_READ | IOMMU_PT_WRITE);
        CHECK((t.prot & rw) == rw, "%s asked %#x got %#x", name, prots[i], t.prot);
        CHECK((t.prot & ~0x3fu) == 0, "%s unknown bits in %#x", name, t.prot);
        if (!(prots[i] & IOMMU_PT_WRITE))
            CHECK(!(t.prot & IOMMU_PT_WRITE), "%s read-only became %#x", name, t.prot);
        CHECK_EQ(iommu_pt_unmap(pt, iova, g, NULL), g, "%s", name);
    }
}

static void map_picks_large_pages(struct iommu_pt *pt, const struct iommu_pt_info *info,
                                  const char *name)
{
    uint64_t g = info->granule;
    uint64_t big = info->pgsize_bitmap & ~g;
    if (!big)
        return;
    big &= -big; /* the next size up */
    uint64_t iova = place(big, input_limit(info), 2);
    uint64_t pa = place(big, 1ULL << info->oas, 1);
    if (iova == 0 || iova + big + g > input_limit(info) || pa + big + g > (1ULL << info->oas))
        return;
    CHECK_EQ(iommu_pt_map(pt, iova, pa, big + g, IOMMU_PT_READ | IOMMU_PT_WRITE), 0, "%s",
             name);
    struct leaves l;
    CHECK_EQ(snapshot(pt, &l), 0, "%s", name);
    CHECK_EQ(l.n, 2, "%s", name);
    CHECK_EQ(l.v[0].size, big, "%s", name);
    CHECK_EQ(l.v[1].size, g, "%s", name);
    CHECK_EQ(l.v[1].iova, iova + big, "%s", name);
    CHECK_EQ(iommu_pt_unmap(pt, iova, big + g, NULL), big + g, "%s", name);
}

static void sweep(const struct sweep_cfg *sc, int with_mem)
{
    char name[96];
    snprintf(name, sizeof(name), "%s ias %u oas %u granule %u %s", format_name(sc->format),
             sc->ias, sc->oas, sc->granule, with_mem ? "mem_ops" : "host");
    struct counting_mem mem;
    counting_mem_init(&mem);
    struct iommu_pt_config cfg = test_config(sc->format, sc->ias, sc->oas, sc->granule);
    if (with_mem) {
        cfg.mem = &counting_ops;
        cfg.mem_ctx = &mem;
    }
    struct iommu_pt *pt = NULL;
    int rc = iommu_pt_new(&cfg, &pt);
    CHECK_EQ(rc, 0, "%s", name);
    if (rc) {
        counting_mem_destroy(&mem);
        return;
    }
    struct iommu_pt_info info;
    CHECK_EQ(iommu_pt_get_info(pt, &info), 0, "%s", name);
    CHECK_EQ(info.format, sc->format, "%s", name);
    CHECK_EQ(info.ias, sc->ias, "%s", name);
    CHECK_EQ(info.oas, sc->oas, "%s", name);
    CHECK_EQ(info.granule, sc->granule ? sc->granule : 4096, "%s", name);
    CHECK(info.pgsize_bitmap & info.granule, "%s bitmap %#" PRIx64, name, info.pgsize_bitmap);
    CHECK(info.table_pages >= 1, "%s", name);
    CHECK(info.root_phys != 0 && info.root_phys == info.regs[0], "%s root %#" PRIx64, name,
          info.root_phys);
    if (with_mem)
        CHECK_EQ(info.root_phys ^ TEST_PHYS_XOR, (uint64_t)(uintptr_t)mem.live[0].virt, "%s",
                 name);

    registers(&info, name);
    empty_table_translates_nothing(pt, &info, name);
    for (uint64_t m = info.pgsize_bitmap; m; m &= m - 1)
        one_page_size(pt, &info, m & -m, name);
    several_granules(pt, &info, name);
    permissions_round_trip(pt, &info, name);
    map_picks_large_pages(pt, &info, name);
    empty_table_translates_nothing(pt, &info, name);

    iommu_pt_free(pt);
    if (with_mem) {
        CHECK_EQ(mem.allocs, mem.frees, "%s: every page given back", name);
        CHECK_EQ(mem.bad_frees, 0, "%s", name);
        CHECK_EQ(mem.bad_p2v, 0, "%s", name);
    }
    counting_mem_destroy(&mem);
}

int main(void)
{
    for (size_t i = 0; i < sizeof(configs) / sizeof(configs[0]); i++) {
        sweep(&configs[i], 0);
        sweep(&configs[i], 1);
    }
    return test_summary();
}
