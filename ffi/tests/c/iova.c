/*
 * The IOVA allocator through the C API: creation errors, the fast path and its
 * caches, the slow path, reservations and lookups, exhaustion, checked-mode double
 * frees, and threads allocating against an atomic ownership bitmap (no two live
 * allocations may ever overlap).
 */
#define _GNU_SOURCE
#include "test.h"

static uint64_t pow2_at_least(uint64_t v)
{
    uint64_t p = 1;
    while (p < v)
        p <<= 1;
    return p;
}

static void creation(void)
{
    struct iova_domain *d = NULL;
    CHECK_EQ(iova_domain_new(4096, 1, 0, &d), 0, "default domain");
    iova_domain_free(d);
    CHECK_EQ(iova_domain_new(65536, 1, IOVA_F_CHECKED, &d), 0, "64K checked");
    iova_domain_free(d);
    d = NULL;
    static const uint64_t bad_granules[] = { 0, 2048, 4097, 12288, 131072, 1ULL << 63 };
    for (size_t i = 0; i < sizeof(bad_granules) / sizeof(bad_granules[0]); i++)
        CHECK_EQ(iova_domain_new(bad_granules[i], 1, 0, &d), -EINVAL, "granule %#" PRIx64,
                 bad_granules[i]);
    CHECK_EQ(iova_domain_new(4096, 0, 0, &d), -EINVAL, "start_pfn 0");
    CHECK_EQ(iova_domain_new(4096, 1, 2, &d), -EINVAL, "unknown flag");
    CHECK_EQ(iova_domain_new(4096, 1, 0x80000000u, &d), -EINVAL, "unknown flag");
    CHECK_EQ(iova_domain_new(4096, 1, 0, NULL), -EINVAL, "NULL out");
    CHECK(d == NULL, "nothing written on failure");

    struct iova_options o = { .granule = 4096, .start_pfn = 1 };
    struct iova_stats st;
    CHECK_EQ(iova_domain_new_with(&o, &d), 0, "options");
    CHECK_EQ(iova_get_stats(d, &st), 0, "stats");
    CHECK_EQ(st.max_cached_pages, 32, "max_cached_order 0 means the default 5");
    iova_domain_free(d);
    o.max_cached_order = 10;
    CHECK_EQ(iova_domain_new_with(&o, &d), 0, "order 10");
    CHECK_EQ(iova_get_stats(d, &st), 0, "stats");
    CHECK_EQ(st.max_cached_pages, 1024, "order 10");
    iova_domain_free(d);
    o.max_cached_order = 11;
    CHECK_EQ(iova_domain_new_with(&o, &d), -EINVAL, "order 11");
    o.max_cached_order = 2;
    o.reserved = 1;
    CHECK_EQ(iova_domain_new_with(&o, &d), -EINVAL, "reserved");
    o.reserved = 0;
    o.flags = 4;
    CHECK_EQ(iova_domain_new_with(&o, &d), -EINVAL, "unknown flag");
    o.flags = IOVA_F_CHECKED;
    o.granule = 3000;
    CHECK_EQ(iova_domain_new_with(&o, &d), -EINVAL, "granule");
    o.granule = 4096;
    o.start_pfn = 0;
    CHECK_EQ(iova_domain_new_with(&o, &d), -EINVAL, "start_pfn");
    CHECK_EQ(iova_domain_new_with(NULL, &d), -EINVAL, "NULL options");
    o.start_pfn = 1;
    CHECK_EQ(iova_domain_new_with(&o, NULL), -EINVAL, "NULL out");
    iova_domain_free(NULL);

    /* NULL domains */
    uint64_t lo, hi;
    CHECK_EQ(iova_alloc_fast(NULL, 1, 100, false), 0, "NULL");
    CHECK_EQ(iova_free_fast(NULL, 1, 1), -EINVAL, "NULL");
    CHECK_EQ(iova_alloc(NULL, 1, 100, false, &lo), -EINVAL, "NULL");
    CHECK_EQ(iova_free(NULL, 1), -EINVAL, "NULL");
    CHECK_EQ(iova_reserve(NULL, 1, 2), -EINVAL, "NULL");
    CHECK_EQ(iova_find(NULL, 1, &lo, &hi), -EINVAL, "NULL");
    CHECK_EQ(iova_get_stats(NULL, &st), -EINVAL, "NULL");
    iova_flush_caches(NULL);
}

static void fast_path(void)
{
    struct iova_domain *d;
    struct iova_stats st;
    CHECK_EQ(iova_domain_new(4096, 1, 0, &d), 0, "create");
    const uint64_t dma32 = 0xFFFFF;
    CHECK_EQ(iova_alloc_fast(d, 0, dma32, false), 0, "size 0");
    uint64_t a = iova_alloc_fast(d, 8, dma32, true);
    CHECK_EQ(a, 0xFFFF8, "top down, aligned to its size");
    /* Sizes are rounded up to a power of two and aligned to it, also beyond the cache. */
    for (uint64_t size = 1; size <= 80; size++) {
        uint64_t p = iova_alloc_fast(d, size, dma32, false);
        uint64_t r = pow2_at_least(size);
        CHECK(p != 0 && p % r == 0 && p + size - 1 <= dma32, "size %" PRIu64 " at %#" PRIx64,
              size, p);
        uint64_t flo = 0, fhi = 0;
        CHECK_EQ(iova_find(d, p + size - 1, &flo, &fhi), 0, "size %" PRIu64, size);
        CHECK_EQ(flo, p, "size %" PRIu64, size);
        CHECK_EQ(iova_free_fast(d, p, size), 0, "size %" PRIu64, size);
    }
    CHECK_EQ(iova_get_stats(d, &st), 0, "stats");
    uint64_t hits = st.cache_hits;
    CHECK(st.cached_pfns > 0, "freed ranges are cached");
    /* A freed size comes back from this CPU's cache (retried in case the thread moved
     * to another CPU between the two calls). */
    uint64_t b = iova_alloc_fast(d, 4, dma32, false);
    int same = 0;
    for (int i = 0; i < 5 && !same; i++) {
        CHECK_EQ(iova_free_fast(d, b, 4), 0, "free");
        uint64_t again = iova_alloc_fast(d, 4, dma32, false);
        same = again == b;
        b = again;
    }
    CHECK(same, "a cache hit returns the range just freed");
    CHECK_EQ(iova_get_stats(d, &st), 0, "stats");
    CHECK(st.cache_hits > hits, "hits counted");
    /* Cached ranges stay allocated in the tree: find sees them, live_ranges counts them. */
    CHECK_EQ(iova_free_fast(d, b, 4), 0, "free");
    uint64_t lo, hi;
    CHECK_EQ(iova_find(d, b, &lo, &hi), 0, "cached range found");
    CHECK_EQ(iova_get_stats(d, &st), 0, "stats");
    CHECK(st.live_ranges >= 1, "cached ranges are live in the tree");
    iova_flush_caches(d);
    CHECK_EQ(iova_get_stats(d, &st), 0, "stats");
    CHECK_EQ(st.cached_pfns, 0, "flushed");
    CHECK_EQ(iova_find(d, b, &lo, &hi), -ENOENT, "flushed ranges are free");
    CHECK_EQ(iova_free_fast(d, a, 8), 0, "free");
    iova_flush_caches(d);
    CHECK_EQ(iova_get_stats(d, &st), 0, "stats");
    CHECK_EQ(st.live_ranges, 0, "everything freed");
    /* A free of a range from the fast path through iova_free. */
    uint64_t c = iova_alloc_fast(d, 2, dma32, false);
    CHECK_EQ(iova_free(d, c + 1), 0, "iova_free of a fast range");
    CHECK_EQ(iova_find(d, c, &lo, &hi), -ENOENT, "gone");
    iova_domain_free(d);
}

static void slow_path(void)
{
    struct iova_domain *d;
    uint64_t p = 0, lo, hi;
    CHECK_EQ(iova_domain_new(4096, 1, 0, &d), 0, "create");
    CHECK_EQ(iova_alloc(d, 3, 100, false, &p), 0, "alloc");
    CHECK_EQ(p, 98, "highest fit");
    CHECK_EQ(iova_alloc(d, 3, 100, true, &p), 0, "aligned");
    CHECK_EQ(p, 92, "aligned to 4");
    CHECK_EQ(iova_alloc(d, 200, 100, false, &p), -ENOMEM, "too big");
    CHECK_EQ(iova_alloc(d, 0, 100, false, &p), -EINVAL, "size 0");
    CHECK_EQ(iova_alloc(d, 1, 100, false, NULL), -EINVAL, "NULL out");
    CHECK_EQ(iova_find(d, 99, &lo, &hi), 0, "find");
    CHECK_EQ(lo, 98, "find");
    CHECK_EQ(hi, 100, "find");
    CHECK_EQ(iova_find(d, 97, &lo, &hi), -ENOENT, "gap");
    CHECK_EQ(iova_find(d, 99, NULL, &hi), -EINVAL, "NULL out");
    CHECK_EQ(iova_free(d, 100), 0, "free by any pfn of the range");
    CHECK_EQ(iova_free(d, 98), -ENOENT, "double free");
    CHECK_EQ(iova_free(d, 93), 0, "free");
    CHECK_EQ(iova_free(d, 5000), -ENOENT, "never allocated");
    iova_domain_free(d);
}

static void reservations(void)
{
    struct iova_domain *d;
    uint64_t lo = 0, hi = 0, p;
    CHECK_EQ(iova_domain_new(4096, 1, 0, &d), 0, "create");
    CHECK_EQ(iova_reserve(d, 0xFEE00, 0xFEEFF), 0, "MSI window");
    CHECK_EQ(iova_find(d, 0xFEE80, &lo, &hi), 0, "find");
    CHECK_EQ(lo, 0xFEE00, "find");
    CHECK_EQ(hi, 0xFEEFF, "find");
    CHECK_EQ(iova_alloc_fast(d, 1, 0xFEEFF, false), 0xFEDFF, "below the window");
    CHECK_EQ(iova_reserve(d, 20, 10), -EINVAL, "lo > hi");
    CHECK_EQ(iova_reserve(d, 0xFED00, 0xFEDFF), -EEXIST, "over a live allocation");
    CHECK_EQ(iova_find(d, 0xFED00, &lo, &hi), -ENOENT, "nothing changed");
    CHECK_EQ(iova_reserve(d, 10, 20), 0, "reserve");
    CHECK_EQ(iova_reserve(d, 21, 30), 0, "touching");
    CHECK_EQ(iova_reserve(d, 15, 25), 0, "overlapping");
    CHECK_EQ(iova_find(d, 12, &lo, &hi), 0, "merged");
    CHECK_EQ(lo, 10, "merged");
    CHECK_EQ(hi, 30, "merged");
    CHECK_EQ(iova_free(d, 12), -ENOENT, "reservations are permanent");
    CHECK_EQ(iova_alloc(d, 1, 30, false, &p), 0, "below the reservation");
    CHECK_EQ(p, 9, "below the reservation");
    iova_domain_free(d);
}

static void exhaustion(void)
{
    struct iova_domain *d;
    CHECK_EQ(iova_domain_new(4096, 1, 0, &d), 0, "create");
    const uint64_t limit = 64;
    uint8_t seen[65] = { 0 };
    int n = 0;
    for (;;) {
        uint64_t p = iova_alloc_fast(d, 1, limit, true);
        if (p == 0)
            break;
        CHECK(p >= 1 && p <= limit && !seen[p], "pfn %" PRIu64, p);
        if (p <= limit)
            seen[p] = 1;
        if (++n > 100)
            break;
    }
    CHECK_EQ(n, 64, "every pfn from start_pfn to the limit, once");
    uint64_t p;
    CHECK_EQ(iova_alloc(d, 1, limit, false, &p), -ENOMEM, "full");
    /* Two neighbours freed into the cache: a 2-page range fits only after a flush. */
    CHECK_EQ(iova_free_fast(d, 2, 1), 0, "free");
    CHECK_EQ(iova_free_fast(d, 3, 1), 0, "free");
    CHECK_EQ(iova_alloc_fast(d, 2, limit, false), 0, "the caches hold the space");
    CHECK_EQ(iova_alloc_fast(d, 2, limit, true), 2, "flush_cache finds it");
    CHECK_EQ(iova_alloc_fast(d, 1, limit, true), 0, "full again");
    iova_domain_free(d);
}

static void checked_mode(void)
{
    struct iova_domain *d;
    CHECK_EQ(iova_domain_new(4096, 1, IOVA_F_CHECKED, &d), 0, "create");
    uint64_t a = iova_alloc_fast(d, 4, 0xFFFFF, false);
    CHECK(a != 0, "alloc");
    CHECK_EQ(iova_free_fast(d, a, 4), 0, "free");
    CHECK_EQ(iova_free_fast(d, a, 4), -EINVAL, "double free");
    uint64_t b = iova_alloc_fast(d, 4, 0xFFFFF, false);
    CHECK_EQ(iova_free_fast(d, b, 8), -EINVAL, "wrong size");
    CHECK_EQ(iova_free_fast(d, b, 2), -EINVAL, "wrong size");
    CHECK_EQ(iova_free_fast(d, b + 1, 1), -EINVAL, "not the start");
    CHECK_EQ(iova_free_fast(d, b, 3), 0, "3 rounds to 4, like the allocation");
    uint64_t c = iova_alloc_fast(d, 100, 0xFFFFF, false);
    CHECK_EQ(iova_free_fast(d, c, 99), -EINVAL, "uncached wrong size");
    CHECK_EQ(iova_free_fast(d, c, 100), 0, "uncached");
    CHECK_EQ(iova_free_fast(d, c, 100), -EINVAL, "uncached double free");
    CHECK_EQ(iova_free_fast(d, 0x123, 0), -EINVAL, "size 0");
    iova_domain_free(d);

    /* An unchecked domain trusts the caller: a double free is not detected (no crash). */
    CHECK_EQ(iova_domain_new(4096, 1, 0, &d), 0, "create");
    a = iova_alloc_fast(d, 4, 0xFFFFF, false);
    CHECK_EQ(iova_free_fast(d, a, 4), 0, "free");
    CHECK_EQ(iova_free_fast(d, a, 4), 0, "unchecked double free");
    iova_domain_free(d);
}

/* ------------------------------------------------------------------ threads */

#define T_THREADS 4
#define T_LIMIT (1u << 15)
#define T_HELD 48

struct owner_map {
    struct iova_domain *d;
    atomic_ulong bits[T_LIMIT / 64 + 1];
    atomic_int stop;
    atomic_long ops, overlaps, fails;
};

/* Claims (or releases) pfns [p, p + n): any bit already in the wanted state means two
 * live allocations overlapped. */
static void own(struct owner_map *m, uint64_t p, uint64_t n, int claim)
{
    for (uint64_t i = p; i < p + n; i++) {
        unsigned long bit = 1UL << (i % 64);
        unsigned long old = claim ? atomic_fetch_or(&m->bits[i / 64], bit)
                                  : atomic_fetch_and(&m->bits[i / 64], ~bit);
        if (((old & bit) != 0) == claim)
            atomic_fetch_add(&m->overlaps, 1);
    }
}

struct held {
    uint64_t pfn, size, pages;
    int fast;
};

struct tworker {
    struct owner_map *m;
    int id;
    pthread_t thread;
};

static void *allocator(void *arg)
{
    struct tworker *w = arg;
    struct owner_map *m = w->m;
    struct held held[T_HELD];
    int n = 0;
    uint64_t rng = 0x853c49e6748fea9bULL * (uint64_t)(w->id + 1);
    while (!atomic_load(&m->stop)) {
        uint64_t r = rng_next(&rng);
        if (n < T_HELD && (n == 0 || r % 3 != 0)) {
            uint64_t size = 1 + (r >> 8) % (r % 7 == 0 ? 200 : 40);
            int fast = (r >> 20) % 4 != 0;
            uint64_t pfn = 0;
            if (fast) {
                pfn = iova_alloc_fast(m->d, size, T_LIMIT, (r >> 24) % 8 == 0);
            } else if (iova_alloc(m->d, size, T_LIMIT, (r >> 24) % 2, &pfn) != 0) {
                pfn = 0;
            }
            if (pfn == 0) {
                atomic_fetch_add(&m->fails, 1);
                continue;
            }
            uint64_t pages = fast && size <= 32 ? pow2_at_least(size) : size;
            if (pfn < 1 || pfn + pages - 1 > T_LIMIT)
                atomic_fetch_add(&m->overlaps, 1000000); /* outside the domain */
            else
                own(m, pfn, pages, 1);
            held[n++] = (struct held){ pfn, size, pages, fast };
        } else if (n > 0) {
            uint64_t i = r % (uint64_t)n;
            struct held h = held[i];
            n--;
            held[i] = held[n];
            own(m, h.pfn, h.pages, 0);
            int rc = h.fast && (r >> 30) % 4 != 0 ? iova_free_fast(m->d, h.pfn, h.size)
                                                   : iova_free(m->d, h.pfn);
            CHECK_EQ(rc, 0, "thread %d: free %#" PRIx64, w->id, h.pfn);
        }
        atomic_fetch_add(&m->ops, 1);
    }
    while (n > 0) {
        struct held h = held[--n];
        own(m, h.pfn, h.pages, 0);
        CHECK_EQ(iova_free(m->d, h.pfn), 0, "thread %d: final free", w->id);
    }
    return NULL;
}

static void threads(uint32_t flags)
{
    static struct owner_map m;
    memset(&m, 0, sizeof(m));
    struct iova_options o = { .granule = 4096, .start_pfn = 1, .flags = flags, .depot_limit = 2 };
    CHECK_EQ(iova_domain_new_with(&o, &m.d), 0, "create");
    CHECK_EQ(iova_reserve(m.d, 0x4000, 0x40ff), 0, "a window in the middle");
    struct tworker ws[T_THREADS];
    for (int i = 0; i < T_THREADS; i++) {
        ws[i] = (struct tworker){ &m, i, 0 };
        pthread_create(&ws[i].thread, NULL, allocator, &ws[i]);
    }
    usleep(300000);
    atomic_store(&m.stop, 1);
    for (int i = 0; i < T_THREADS; i++)
        pthread_join(ws[i].thread, NULL);
    printf("iova threads (flags %u): %ld ops, %ld failed allocations\n", flags,
           atomic_load(&m.ops), atomic_load(&m.fails));
    CHECK_EQ(atomic_load(&m.overlaps), 0, "no two live allocations overlapped (flags %u)", flags);
    CHECK(atomic_load(&m.ops) > 0, "progress");
    /* Nothing overlapped the reservation. */
    for (uint64_t p = 0x4000; p <= 0x40ff; p++) {
        uint64_t lo, hi;
        if (iova_find(m.d, p, &lo, &hi) != 0 || lo != 0x4000 || hi != 0x40ff) {
            CHECK(0, "reservation intact at %#" PRIx64, p);
            break;
        }
    }
    iova_flush_caches(m.d);
    struct iova_stats st;
    CHECK_EQ(iova_get_stats(m.d, &st), 0, "stats");
    CHECK_EQ(st.live_ranges, 0, "everything freed (flags %u)", flags);
    CHECK_EQ(st.cached_pfns, 0, "caches empty");
    iova_domain_free(m.d);
}

int main(void)
{
    creation();
    fast_path();
    slow_path();
    reservations();
    exhaustion();
    checked_mode();
    threads(0);
    threads(IOVA_F_CHECKED);
    return test_summary();
}
