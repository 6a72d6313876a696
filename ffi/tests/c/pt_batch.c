/*
 * Calls that amortise the pin and the boundary over a batch: iommu_pt_map_sg (a
 * scatter-gather list mapped contiguously in IOVA space, all or nothing) and
 * iommu_pt_session_begin/_end (one pin for many calls on this thread).
 */
#define _GNU_SOURCE
#include "test.h"

static void map_sg_is_contiguous_and_all_or_nothing(uint32_t format)
{
    const char *name = format_name(format);
    struct iommu_pt_config cfg = test_config(format, 48, 48, 4096);
    struct iommu_pt *pt;
    CHECK_EQ(iommu_pt_new(&cfg, &pt), 0, "%s", name);
    const struct iommu_pt_sg sg[] = {
        { .paddr = 0x10000000, .len = 0x3000 },
        { .paddr = 0x20200000, .len = 0x200000 }, /* 2M aligned: may use a block */
        { .paddr = 0x30001000, .len = 0x1000 },
    };
    const uint64_t iova = 0x40000000 - 0x3000, total = 0x3000 + 0x200000 + 0x1000;
    uint64_t mapped = 7;
    CHECK_EQ(iommu_pt_map_sg(pt, iova, sg, 3, IOMMU_PT_READ | IOMMU_PT_WRITE, &mapped), 0,
             "%s", name);
    CHECK_EQ(mapped, total, "%s", name);
    CHECK_EQ(iommu_pt_iova_to_phys(pt, iova + 0x2abc), 0x10002abc, "%s: piece 0", name);
    CHECK_EQ(iommu_pt_iova_to_phys(pt, iova + 0x3000), 0x20200000, "%s: piece 1", name);
    CHECK_EQ(iommu_pt_iova_to_phys(pt, iova + 0x203000), 0x30001000, "%s: piece 2", name);
    struct leaves before;
    snapshot(pt, &before);
    /* A list whose last piece collides with a mapping: nothing of it stays. */
    const struct iommu_pt_sg clash[] = {
        { .paddr = 0x50000000, .len = 0x1000 },
        { .paddr = 0x50001000, .len = 0x1000 },
    };
    mapped = 7;
    CHECK_EQ(iommu_pt_map_sg(pt, iova - 0x1000, clash, 2, IOMMU_PT_READ, &mapped), -EEXIST,
             "%s", name);
    CHECK_EQ(mapped, 0, "%s", name);
    struct leaves after;
    snapshot(pt, &after);
    CHECK(same_leaves(&before, &after), "%s: the table is as before", name);
    /* Bad arguments. */
    const struct iommu_pt_sg odd[] = { { .paddr = 0x1234, .len = 0x1000 } };
    CHECK_EQ(iommu_pt_map_sg(pt, 0, odd, 1, IOMMU_PT_READ, NULL), -EINVAL, "%s", name);
    CHECK_EQ(iommu_pt_map_sg(pt, 0, NULL, 1, IOMMU_PT_READ, NULL), -EINVAL, "%s", name);
    CHECK_EQ(iommu_pt_map_sg(pt, 0, NULL, 0, IOMMU_PT_READ, NULL), 0, "%s: empty list", name);
    CHECK_EQ(iommu_pt_map_sg(NULL, 0, sg, 1, IOMMU_PT_READ, NULL), -EINVAL, "%s", name);
    CHECK_EQ(iommu_pt_map_sg(pt, 1ULL << 48, sg, 1, IOMMU_PT_READ, NULL), -ERANGE, "%s",
             name);
    CHECK_EQ(iommu_pt_unmap(pt, iova, total, NULL), total, "%s", name);
    iommu_pt_free(pt);
}

static void *end_elsewhere(void *s)
{
    return (void *)(intptr_t)iommu_pt_session_end(s);
}

static void sessions(void)
{
    struct iommu_pt_config cfg = test_config(IOMMU_PT_FMT_ARM_S1, 48, 48, 4096);
    struct iommu_pt *pt;
    CHECK_EQ(iommu_pt_new(&cfg, &pt), 0, "create");
    struct iommu_pt_session *s = iommu_pt_session_begin();
    CHECK(s != NULL, "begin");
    struct iommu_pt_session *inner = iommu_pt_session_begin(); /* sessions nest */
    for (uint64_t i = 0; i < 1024; i++)
        CHECK_EQ(iommu_pt_map_pages(pt, i << 12, 0x80000000 + (i << 12), 4096, 1,
                                    IOMMU_PT_READ, NULL),
                 0, "map %" PRIu64, i);
    CHECK_EQ(iommu_pt_iova_to_phys(pt, 0x3ff123), 0x803ff123, "lookup in a session");
    CHECK_EQ(iommu_pt_session_end(inner), 0, "end inner");
    pthread_t t;
    void *rc;
    pthread_create(&t, NULL, end_elsewhere, s);
    pthread_join(t, &rc);
    CHECK_EQ((intptr_t)rc, -EINVAL, "a session ends only on its own thread");
    CHECK_EQ(iommu_pt_unmap(pt, 0, 1024 << 12, NULL), 1024 << 12, "unmap in the session");
    CHECK_EQ(iommu_pt_session_end(s), 0, "end");
    CHECK_EQ(iommu_pt_session_end(NULL), -EINVAL, "NULL");
    iommu_pt_free(pt);
}

int main(void)
{
    map_sg_is_contiguous_and_all_or_nothing(IOMMU_PT_FMT_VTD_SS);
    map_sg_is_contiguous_and_all_or_nothing(IOMMU_PT_FMT_VTD_FS);
    map_sg_is_contiguous_and_all_or_nothing(IOMMU_PT_FMT_ARM_S1);
    map_sg_is_contiguous_and_all_or_nothing(IOMMU_PT_FMT_ARM_S2);
    sessions();
    return test_summary();
}
