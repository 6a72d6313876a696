/*
 * Shared helpers of the C test programs: checks with a pass/fail tally, and two table
 * memories for iommu_pt_mem_ops:
 *
 * - counting_mem: heap pages with physical address != CPU address, every allocation
 *   tracked, so a test can tell which pages were given back, and frees of unknown
 *   pages (double frees) and phys_to_virt of pages not live are counted as errors;
 *   it can also be told to fail allocations (-ENOMEM paths).
 * - guard_mem: every page from a reserved region, never reused; a freed page is made
 *   inaccessible (PROT_NONE), so any read of a freed table page crashes the program.
 *
 * Each program ends with `return test_summary();`, which prints "N passed, M failed".
 */
#ifndef IOMMU_PT_TEST_H
#define IOMMU_PT_TEST_H

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include <iommu_pt.h>

/* ------------------------------------------------------------------ checks */

static atomic_long test_passed;
static atomic_long test_failed;

#define CHECK(cond, ...)                                                                \
    do {                                                                                \
        if (cond) {                                                                     \
            atomic_fetch_add(&test_passed, 1);                                          \
        } else {                                                                        \
            atomic_fetch_add(&test_failed, 1);                                          \
            fprintf(stderr, "FAIL %s:%d: %s: ", __FILE__, __LINE__, #cond);             \
            fprintf(stderr, __VA_ARGS__);                                               \
            fputc('\n', stderr);                                                        \
        }                                                                               \
    } while (0)

/* Compares two integers (as uint64_t), printing both on failure. */
#define CHECK_EQ(a, b, ...)                                                             \
    do {                                                                                \
        uint64_t check_a_ = (uint64_t)(a), check_b_ = (uint64_t)(b);                    \
        if (check_a_ == check_b_) {                                                     \
            atomic_fetch_add(&test_passed, 1);                                          \
        } else {                                                                        \
            atomic_fetch_add(&test_failed, 1);                                          \
            fprintf(stderr, "FAIL %s:%d: %s == %s: %#" PRIx64 " != %#" PRIx64 ": ",     \
                    __FILE__, __LINE__, #a, #b, check_a_, check_b_);                    \
            fprintf(stderr, __VA_ARGS__);                                               \
            fputc('\n', stderr);                                                        \
        }                                                                               \
    } while (0)

static inline int test_summary(void)
{
    long p = atomic_load(&test_passed), f = atomic_load(&test_failed);
    printf("%ld passed, %ld failed\n", p, f);
    return f == 0 && p > 0 ? 0 : 1;
}

static inline double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* xorshift64*: a per-thread pseudo-random stream. */
static inline uint64_t rng_next(uint64_t *s)
{
    uint64_t x = *s;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *s = x;
    return x * 0x2545F4914F6CDD1DULL;
}

/* The physical addresses both memories hand out: the CPU address with bit 46 flipped,
 * so that code confusing the two reads garbage (user addresses are below 2^47). */
#define TEST_PHYS_XOR (1ULL << 46)

/* ------------------------------------------------------------ counting_mem */

struct counting_page {
    void *virt;
    uint64_t phys;
    size_t size;
    uint64_t seq; /* allocation number, from 1 */
};

struct counting_mem {
    pthread_mutex_t lock;
    struct counting_page *live; /* unordered */
    size_t nlive, cap;
    uint64_t allocs, frees, bad_frees, bad_p2v;
    long fail_after; /* allocations left before alloc fails; < 0 = never */
};

static inline void counting_mem_init(struct counting_mem *m)
{
    memset(m, 0, sizeof(*m));
    pthread_mutex_init(&m->lock, NULL);
    m->fail_after = -1;
}

static inline void counting_mem_destroy(struct counting_mem *m)
{
    for (size_t i = 0; i < m->nlive; i++)
        free(m->live[i].virt);
    free(m->live);
    pthread_mutex_destroy(&m->lock);
}

static inline void *counting_alloc(void *ctx, size_t size, size_t align, uint64_t *phys)
{
    struct counting_mem *m = ctx;
    void *p = NULL;
    pthread_mutex_lock(&m->lock);
    if (m->fail_after == 0)
        goto out;
    if (m->fail_after > 0)
        m->fail_after--;
    if (posix_memalign(&p, align < sizeof(void *) ? sizeof(void *) : align, size) != 0) {
        p = NULL;
        goto out;
    }
    memset(p, 0, size);
    if (m->nlive == m->cap) {
        m->cap = m->cap ? 2 * m->cap : 64;
        m->live = realloc(m->live, m->cap * sizeof(*m->live));
        if (!m->live)
            abort();
    }
    *phys = (uint64_t)(uintptr_t)p ^ TEST_PHYS_XOR;
    m->allocs++;
    m->live[m->nlive++] = (struct counting_page){ p, *phys, size, m->allocs };
out:
    pthread_mutex_unlock(&m->lock);
    return p;
}

static inline void counting_free(void *ctx, void *virt, uint64_t phys, size_t size)
{
    struct counting_mem *m = ctx;
    pthread_mutex_lock(&m->lock);
    for (size_t i = 0; i < m->nlive; i++) {
        struct counting_page *pg = &m->live[i];
        if (pg->virt == virt) {
            if (pg->phys != phys || pg->size != size)
                m->bad_frees++;
            /* Poison before giving back: a later read of a stale entry finds garbage. */
            memset(virt, 0xa5, size);
            free(virt);
            m->live[i] = m->live[--m->nlive];
            m->frees++;
            pthread_mutex_unlock(&m->lock);
            return;
        }
    }
    m->bad_frees++; /* double free, or never allocated */
    pthread_mutex_unlock(&m->lock);
}

static inline void *counting_phys_to_virt(void *ctx, uint64_t phys)
{
    struct counting_mem *m = ctx;
    void *virt = (void *)(uintptr_t)(phys ^ TEST_PHYS_XOR);
    pthread_mutex_lock(&m->lock);
    int live = 0;
    for (size_t i = 0; i < m->nlive && !live; i++)
        live = phys >= m->live[i].phys && phys < m->live[i].phys + m->live[i].size;
    if (!live) {
        m->bad_p2v++;
        virt = NULL;
    }
    pthread_mutex_unlock(&m->lock);
    return virt;
}

/* Whether allocation number `seq` is still live. */
static inline int counting_is_live(struct counting_mem *m, uint64_t seq)
{
    int live = 0;
    pthread_mutex_lock(&m->lock);
    for (size_t i = 0; i < m->nlive && !live; i++)
        live = m->live[i].seq == seq;
    pthread_mutex_unlock(&m->lock);
    return live;
}

/* Live pages in granules, as iommu_pt_info.table_pages counts them (a concatenated
 * stage-2 root counts as its tables, a small top table as one). */
static inline uint64_t counting_live_granules(struct counting_mem *m, uint64_t granule)
{
    uint64_t n = 0;
    pthread_mutex_lock(&m->lock);
    for (size_t i = 0; i < m->nlive; i++)
        n += m->live[i].size > granule ? m->live[i].size / granule : 1;
    pthread_mutex_unlock(&m->lock);
    return n;
}

static inline uint64_t counting_frees(struct counting_mem *m)
{
    pthread_mutex_lock(&m->lock);
    uint64_t f = m->frees;
    pthread_mutex_unlock(&m->lock);
    return f;
}

static const struct iommu_pt_mem_ops counting_ops = {
    .alloc = counting_alloc,
    .free = counting_free,
    .phys_to_virt = counting_phys_to_virt,
};

/* --------------------------------------------------------------- guard_mem */

#define GUARD_PAGE 4096ULL

struct guard_mem {
    uint8_t *base;
    size_t len;
    atomic_size_t next;        /* bump offset */
    _Atomic uint8_t *state;    /* per 4K page: 0 never used, 1 live, 2 freed */
    atomic_ulong allocs, frees, bad_frees, bad_p2v, exhausted;
};

static inline int guard_mem_init(struct guard_mem *m, size_t len)
{
    memset(m, 0, sizeof(*m));
    m->base = mmap(NULL, len, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (m->base == MAP_FAILED)
        return -1;
    m->len = len;
    m->state = calloc(len / GUARD_PAGE, 1);
    return m->state ? 0 : -1;
}

static inline void guard_mem_destroy(struct guard_mem *m)
{
    munmap(m->base, m->len);
    free((void *)m->state);
}

static inline void *guard_alloc(void *ctx, size_t size, size_t align, uint64_t *phys)
{
    struct guard_mem *m = ctx;
    size_t len = (size + GUARD_PAGE - 1) & ~(GUARD_PAGE - 1);
    if (align < GUARD_PAGE)
        align = GUARD_PAGE;
    size_t off, start;
    size_t cur = atomic_load(&m->next);
    do {
        start = (cur + align - 1) & ~(align - 1);
        off = start + len;
        if (off > m->len) {
            atomic_fetch_add(&m->exhausted, 1);
            return NULL;
        }
    } while (!atomic_compare_exchange_weak(&m->next, &cur, off));
    uint8_t *p = m->base + start;
    if (mprotect(p, len, PROT_READ | PROT_WRITE) != 0)
        return NULL; /* leaks the range: fine for a test */
    for (size_t i = start / GUARD_PAGE; i < off / GUARD_PAGE; i++)
        atomic_store(&m->state[i], 1);
    atomic_fetch_add(&m->allocs, 1);
    *phys = (uint64_t)(uintptr_t)p ^ TEST_PHYS_XOR;
    return p; /* fresh anonymous memory is zeroed */
}

static inline void guard_free(void *ctx, void *virt, uint64_t phys, size_t size)
{
    struct guard_mem *m = ctx;
    uint8_t *p = virt;
    size_t len = (size + GUARD_PAGE - 1) & ~(GUARD_PAGE - 1);
    if (p < m->base || p + len > m->base + m->len ||
        ((uint64_t)(uintptr_t)p ^ TEST_PHYS_XOR) != phys) {
        atomic_fetch_add(&m->bad_frees, 1);
        return;
    }
    size_t first = (size_t)(p - m->base) / GUARD_PAGE;
    for (size_t i = first; i < first + len / GUARD_PAGE; i++) {
        if (atomic_exchange(&m->state[i], 2) != 1)
            atomic_fetch_add(&m->bad_frees, 1);
    }
    /* Give the memory back and make the range fault on any access; never reused. */
    madvise(p, len, MADV_DONTNEED);
    mprotect(p, len, PROT_NONE);
    atomic_fetch_add(&m->frees, 1);
}

static inline void *guard_phys_to_virt(void *ctx, uint64_t phys)
{
    struct guard_mem *m = ctx;
    uint8_t *p = (uint8_t *)(uintptr_t)(phys ^ TEST_PHYS_XOR);
    if (p < m->base || p >= m->base + m->len) {
        atomic_fetch_add(&m->bad_p2v, 1);
        return NULL;
    }
    if (atomic_load(&m->state[(size_t)(p - m->base) / GUARD_PAGE]) != 1)
        atomic_fetch_add(&m->bad_p2v, 1); /* the access that follows will crash */
    return p;
}

static const struct iommu_pt_mem_ops guard_ops = {
    .alloc = guard_alloc,
    .free = guard_free,
    .phys_to_virt = guard_phys_to_virt,
};

/* ----------------------------------------------------------------- tables */

/* A config with everything else 0 (defaults). */
static inline struct iommu_pt_config test_config(uint32_t format, uint32_t ias, uint32_t oas,
                                                 uint32_t granule)
{
    struct iommu_pt_config c;
    memset(&c, 0, sizeof(c));
    c.format = format;
    c.ias = ias;
    c.oas = oas;
    c.granule = granule;
    return c;
}

static inline const char *format_name(uint32_t format)
{
    switch (format) {
    case IOMMU_PT_FMT_VTD_SS: return "vtd-ss";
    case IOMMU_PT_FMT_VTD_FS: return "vtd-fs";
    case IOMMU_PT_FMT_ARM_S1: return "arm-s1";
    case IOMMU_PT_FMT_ARM_S2: return "arm-s2";
    default: return "?";
    }
}

/* The first IOVA a table refuses: 2^ias, or 2^(ias-1) for VT-d first stage. */
static inline uint64_t input_limit(const struct iommu_pt_info *info)
{
    uint32_t bits = info->format == IOMMU_PT_FMT_VTD_FS ? info->ias - 1 : info->ias;
    return bits >= 64 ? UINT64_MAX : 1ULL << bits;
}

/* Leaves of a walk, for before/after comparisons. */
struct leaves {
    struct iommu_pt_translation v[256];
    size_t n;
    int overflow;
};

static inline int collect_leaf(void *arg, const struct iommu_pt_translation *t)
{
    struct leaves *l = arg;
    if (l->n == sizeof(l->v) / sizeof(l->v[0])) {
        l->overflow = 1;
        return 1;
    }
    l->v[l->n++] = *t;
    return 0;
}

static inline int snapshot(const struct iommu_pt *pt, struct leaves *out)
{
    memset(out, 0, sizeof(*out));
    return iommu_pt_walk(pt, 0, 0, collect_leaf, out);
}

static inline int same_leaves(const struct leaves *a, const struct leaves *b)
{
    return a->n == b->n && !a->overflow && !b->overflow &&
           memcmp(a->v, b->v, a->n * sizeof(a->v[0])) == 0;
}

#endif /* IOMMU_PT_TEST_H */
