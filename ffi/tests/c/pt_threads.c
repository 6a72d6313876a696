/*
 * Concurrency: writers map and unmap disjoint ranges (whole tables freed over and
 * over, with and without gathers) while readers translate, walk and dump the whole
 * table. Table memory comes from guard_mem: a freed page is made inaccessible and never
 * reused, so a reader touching a freed table page crashes the program. Every
 * translation a reader sees must be one some writer made. Time-bounded.
 */
#define _GNU_SOURCE
#include "test.h"

#include <fcntl.h>

#define WRITERS 2
#define READERS 2
#define RUN_SECONDS 0.4
/* Output address = IOVA with this bit flipped: aligned for every leaf size used. */
#define PA_XOR (1ULL << 44)

struct shared {
    struct iommu_pt *pt;
    struct iommu_pt_info info;
    uint64_t g, span; /* granule; what one last-level table maps */
    uint64_t region;  /* bytes each writer owns */
    atomic_int stop;
    atomic_long writes, reads, walks, dumps;
    int devnull;
};

struct worker {
    struct shared *s;
    int id;
    pthread_t thread;
};

static uint64_t region_base(const struct shared *s, int writer)
{
    return (uint64_t)(writer + 1) * s->region;
}

static void *writer(void *arg)
{
    struct worker *w = arg;
    struct shared *s = w->s;
    const uint64_t base = region_base(s, w->id), g = s->g, span = s->span;
    const uint32_t rw = IOMMU_PT_READ | IOMMU_PT_WRITE;
    struct iommu_pt_gather *gather = iommu_pt_gather_new();
    uint64_t rng = 0x9e3779b97f4a7c15ULL * (uint64_t)(w->id + 1);
    uint64_t round = 0;
    while (!atomic_load(&s->stop)) {
        uint64_t slot = rng_next(&rng) % 4;
        uint64_t iova = base + slot * span;
        int with_gather = (int)(round & 1);
        if (round % 8 == 7) {
            /* A whole upper-level span of last-level leaves: frees an upper table. */
            uint64_t upper = span * (g / 8), at = base + 4 * upper;
            uint64_t mapped = 0;
            int rc = iommu_pt_map_pages(s->pt, at, at ^ PA_XOR, span, g / 8, rw, &mapped);
            CHECK_EQ(rc, 0, "writer %d: map upper span", w->id);
            CHECK_EQ(iommu_pt_iova_to_phys(s->pt, at + upper / 2 + 8),
                     (at + upper / 2 + 8) ^ PA_XOR, "writer %d", w->id);
            CHECK_EQ(iommu_pt_unmap(s->pt, at, upper, with_gather ? gather : NULL), upper,
                     "writer %d: unmap upper span", w->id);
        } else {
            /* One last-level table's span of granule pages: the unmap frees the table. */
            int rc = iommu_pt_map_pages(s->pt, iova, iova ^ PA_XOR, g, span / g, rw, NULL);
            CHECK_EQ(rc, 0, "writer %d: map", w->id);
            uint64_t probe = iova + (rng_next(&rng) % (span / g)) * g + 0x10;
            CHECK_EQ(iommu_pt_iova_to_phys(s->pt, probe), probe ^ PA_XOR, "writer %d", w->id);
            uint64_t done = round % 3 == 0
                                ? iommu_pt_unmap_pages(s->pt, iova, g, span / g,
                                                       with_gather ? gather : NULL)
                                : iommu_pt_unmap(s->pt, iova, span, with_gather ? gather : NULL);
            CHECK_EQ(done, span, "writer %d: unmap", w->id);
        }
        if (with_gather) {
            uint64_t lo, hi;
            CHECK_EQ(iommu_pt_gather_range(gather, &lo, &hi), 0, "writer %d", w->id);
            CHECK(lo >= base && hi < base + s->region, "writer %d: range outside its region",
                  w->id);
            iommu_pt_gather_release(gather); /* "after the IOTLB invalidation" */
        }
        atomic_fetch_add(&s->writes, 1);
        round++;
    }
    iommu_pt_gather_free(gather);
    return NULL;
}

struct walk_check {
    int bad;
    uint64_t last_end;
};

static int check_leaf(void *arg, const struct iommu_pt_translation *t)
{
    struct walk_check *c = arg;
    if (t->paddr != (t->iova ^ PA_XOR) || (t->iova & (t->size - 1)) != 0 ||
        t->iova < c->last_end)
        c->bad++;
    c->last_end = t->iova + t->size;
    return 0;
}

static void *reader(void *arg)
{
    struct worker *w = arg;
    struct shared *s = w->s;
    uint64_t rng = 0x2545F4914F6CDD1DULL * (uint64_t)(w->id + 7);
    uint64_t n = 0;
    while (!atomic_load(&s->stop)) {
        int writer = (int)(rng_next(&rng) % WRITERS);
        uint64_t base = region_base(s, writer);
        uint64_t q = base + rng_next(&rng) % s->region;
        struct iommu_pt_translation t;
        int rc = iommu_pt_translate(s->pt, q, &t);
        if (rc == 0) {
            CHECK_EQ(t.paddr, q ^ PA_XOR, "reader %d: a translation nobody made", w->id);
            CHECK_EQ(t.iova, q, "reader %d", w->id);
        } else {
            CHECK_EQ(rc, -ENOENT, "reader %d: translate %#" PRIx64, w->id, q);
        }
        uint64_t pa = iommu_pt_iova_to_phys(s->pt, q);
        CHECK(pa == 0 || pa == (q ^ PA_XOR), "reader %d: iova_to_phys %#" PRIx64, w->id, q);
        atomic_fetch_add(&s->reads, 1);
        if (++n % 64 == 0) {
            struct walk_check c = { 0, 0 };
            CHECK_EQ(iommu_pt_walk(s->pt, base, s->region, check_leaf, &c), 0, "reader %d",
                     w->id);
            CHECK_EQ(c.bad, 0, "reader %d: walk saw a bad leaf", w->id);
            atomic_fetch_add(&s->walks, 1);
        }
        if (n % 512 == 0) {
            CHECK_EQ(iommu_pt_dump(s->pt, s->devnull), 0, "reader %d: dump", w->id);
            struct iommu_pt_info info;
            CHECK_EQ(iommu_pt_get_info(s->pt, &info), 0, "reader %d", w->id);
            atomic_fetch_add(&s->dumps, 1);
        }
    }
    return NULL;
}

static void run(uint32_t format, uint32_t ias, uint32_t granule)
{
    char name[64];
    snprintf(name, sizeof(name), "%s ias %u granule %u", format_name(format), ias, granule);
    struct guard_mem mem;
    if (guard_mem_init(&mem, 16ULL << 30) != 0) {
        CHECK(0, "%s: reserve guard memory", name);
        return;
    }
    struct shared s;
    memset(&s, 0, sizeof(s));
    struct iommu_pt_config cfg = test_config(format, ias, 48, granule);
    cfg.mem = &guard_ops;
    cfg.mem_ctx = &mem;
    CHECK_EQ(iommu_pt_new(&cfg, &s.pt), 0, "%s", name);
    if (!s.pt) {
        guard_mem_destroy(&mem);
        return;
    }
    iommu_pt_get_info(s.pt, &s.info);
    s.g = s.info.granule;
    s.span = s.g * (s.g / 8);
    s.region = 8 * s.span * (s.g / 8); /* room for 4 spans and an upper span at 4 */
    s.devnull = open("/dev/null", O_WRONLY);
    CHECK(region_base(&s, WRITERS) + s.region <= input_limit(&s.info), "%s: regions fit", name);

    struct worker ws[WRITERS + READERS];
    for (int i = 0; i < WRITERS + READERS; i++) {
        ws[i] = (struct worker){ &s, i < WRITERS ? i : i - WRITERS, 0 };
        pthread_create(&ws[i].thread, NULL, i < WRITERS ? writer : reader, &ws[i]);
    }
    double end = now_s() + RUN_SECONDS;
    while (now_s() < end)
        usleep(10000);
    atomic_store(&s.stop, 1);
    for (int i = 0; i < WRITERS + READERS; i++)
        pthread_join(ws[i].thread, NULL);

    printf("%s: %ld writer rounds, %ld reads, %ld walks, %ld dumps, %lu pages allocated\n", name,
           atomic_load(&s.writes), atomic_load(&s.reads), atomic_load(&s.walks),
           atomic_load(&s.dumps), atomic_load(&mem.allocs));
    CHECK(atomic_load(&s.writes) > 0 && atomic_load(&s.reads) > 0, "%s: progress", name);
    struct leaves left;
    CHECK_EQ(snapshot(s.pt, &left), 0, "%s", name);
    CHECK_EQ(left.n, 0, "%s: everything was unmapped", name);
    iommu_pt_free(s.pt);
    close(s.devnull);
    CHECK_EQ(atomic_load(&mem.allocs), atomic_load(&mem.frees), "%s: every page given back",
             name);
    CHECK_EQ(atomic_load(&mem.bad_frees), 0, "%s: double frees", name);
    CHECK_EQ(atomic_load(&mem.bad_p2v), 0, "%s: phys_to_virt of a freed page", name);
    CHECK_EQ(atomic_load(&mem.exhausted), 0, "%s: guard memory ran out", name);
    guard_mem_destroy(&mem);
}

int main(void)
{
    run(IOMMU_PT_FMT_VTD_SS, 48, 4096);
    run(IOMMU_PT_FMT_ARM_S1, 48, 4096);
    run(IOMMU_PT_FMT_ARM_S2, 48, 16384);
    return test_summary();
}
