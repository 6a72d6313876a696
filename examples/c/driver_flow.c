/*
 * driver_flow.c: how an IOMMU driver (or a VMM emulating one) uses libiommu_pt.
 *
 *   1. create an I/O page table (here Intel VT-d second stage, 4 levels);
 *   2. program the hardware from iommu_pt_info (root pointer and AW);
 *   3. allocate an IOVA range and map a DMA buffer there;
 *   4. unmap it with a gather, invalidate the gathered range, release the gather;
 *   5. free everything.
 *
 * Build, once the library is installed (scripts/c-install.sh PREFIX):
 *   cc -std=c11 driver_flow.c $(pkg-config --cflags --libs iommu_pt) -o driver_flow
 * (scripts/c-example.sh does this, statically and dynamically, and runs both).
 */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include <iommu_pt.h>

#define PAGE_SHIFT 12
#define SZ_4K 0x1000ULL
#define SZ_2M 0x200000ULL

/* Stand-in for the driver's IOTLB invalidation (a VT-d invalidation descriptor, an
 * SMMUv3 CMD_TLBI_*): a real driver queues it and waits for completion. */
static void invalidate_iotlb(uint64_t start, uint64_t last, int non_leaf)
{
    printf("invalidate IOTLB [%#" PRIx64 ", %#" PRIx64 "]%s\n", start, last,
           non_leaf ? " including cached non-leaf entries (page tables were freed)" : "");
}

static int print_leaf(void *arg, const struct iommu_pt_translation *leaf)
{
    (void)arg;
    printf("  leaf iova %#" PRIx64 " -> pa %#" PRIx64 ", %#" PRIx64 " bytes, prot %#x, level %u\n",
           leaf->iova, leaf->paddr, leaf->size, leaf->prot, leaf->level);
    return 0;
}

int main(void)
{
    printf("libiommu_pt %s\n", iommu_pt_version());

    /* 1. A VT-d second-stage table: 48-bit IOVAs (4 levels), 48-bit output addresses,
     *    table pages from the host heap (mem == NULL). */
    struct iommu_pt_config cfg;
    memset(&cfg, 0, sizeof(cfg));
    cfg.format = IOMMU_PT_FMT_VTD_SS;
    cfg.ias = 48;
    cfg.oas = 48;
    struct iommu_pt *pt;
    int rc = iommu_pt_new(&cfg, &pt);
    if (rc) {
        fprintf(stderr, "iommu_pt_new: %d\n", rc);
        return 1;
    }

    /* 2. What to write into the context (or PASID) entry. */
    struct iommu_pt_info info;
    iommu_pt_get_info(pt, &info);
    printf("levels %u, page sizes %#" PRIx64 ", SSPTPTR %#" PRIx64 ", AW %" PRIu64 "\n",
           info.levels, info.pgsize_bitmap, info.regs[0], info.regs[1]);

    /* 3. IOVA space for the device: keep the interrupt window out, then allocate room
     *    for a 2 MiB + 8 KiB buffer below 4 GiB. */
    struct iova_domain *iovad;
    if (iova_domain_new(SZ_4K, 1, 0, &iovad)) {
        iommu_pt_free(pt);
        return 1;
    }
    iova_reserve(iovad, 0xFEE00000 >> PAGE_SHIFT, 0xFEEFFFFF >> PAGE_SHIFT);
    const uint64_t len = SZ_2M + 2 * SZ_4K;
    const uint64_t pages = len >> PAGE_SHIFT;
    uint64_t pfn = iova_alloc_fast(iovad, pages, (1ULL << 32 >> PAGE_SHIFT) - 1, true);
    if (pfn == 0) {
        fprintf(stderr, "out of IOVA space\n");
        return 1;
    }
    const uint64_t iova = pfn << PAGE_SHIFT;
    const uint64_t buffer_pa = 0x123400000ULL; /* the buffer's physical address */

    /* map() picks the page sizes: here one 2 MiB leaf and two 4 KiB leaves. */
    rc = iommu_pt_map(pt, iova, buffer_pa, len,
                      IOMMU_PT_READ | IOMMU_PT_WRITE | IOMMU_PT_CACHE);
    if (rc) {
        fprintf(stderr, "iommu_pt_map: %d\n", rc);
        return 1;
    }
    printf("mapped %#" PRIx64 " bytes at IOVA %#" PRIx64 ":\n", len, iova);
    iommu_pt_walk(pt, iova, len, print_leaf, NULL);
    printf("device reads IOVA %#" PRIx64 " -> pa %#" PRIx64 "\n", iova + 0x1234,
           iommu_pt_iova_to_phys(pt, iova + 0x1234));

    /* 4. Unmap: the gather collects the range to invalidate and the table pages the
     *    unmap unlinked, which the IOMMU may still hold in its walk caches. */
    struct iommu_pt_gather *gather = iommu_pt_gather_new();
    uint64_t unmapped = iommu_pt_unmap(pt, iova, len, gather);
    printf("unmapped %#" PRIx64 " bytes\n", unmapped);
    uint64_t start, last;
    if (iommu_pt_gather_range(gather, &start, &last) == 0)
        invalidate_iotlb(start, last, iommu_pt_gather_freed_tables(gather) != 0);
    /* Only now may the unlinked table pages be reused. */
    iommu_pt_gather_release(gather);
    iova_free_fast(iovad, pfn, pages);

    /* 5. Tear down. */
    iommu_pt_gather_free(gather);
    iova_domain_free(iovad);
    iommu_pt_free(pt);
    return unmapped == len ? 0 : 1;
}
