// DmiRegions without a kernel: each region found wherever its index slot went, the index
// growing and its granule shrinking, wider grants replacing narrower ones, invalidation; and
// which grants a timed initiator may use.
#include <gtest/gtest.h>

#include <vector>

#include "models/dmi_regions.h"

namespace kpu::model {
namespace {

DmiRegion region(uint64_t lo, uint64_t bytes, uint8_t* data = nullptr) {
    DmiRegion r;
    r.lo = lo, r.hi = lo + bytes, r.data = data, r.readable = r.writable = true;
    return r;
}

TEST(DmiRegions, ARegionHoldsWhatLiesWhollyInside) {
    DmiRegions regions;
    std::vector<uint8_t> bytes(4096);
    regions.add(region(0x10000, 4096, bytes.data()));
    ASSERT_NE(regions.find(0x10000, 4096), nullptr);
    EXPECT_EQ(regions.find(0x10000 + 100, 8)->data, bytes.data());
    EXPECT_EQ(regions.find(0x10000 + 4090, 8), nullptr);  // runs past the end
    EXPECT_EQ(regions.find(0x10000 - 1, 2), nullptr);      // starts before
    EXPECT_EQ(regions.find(0x20000, 1), nullptr);
    EXPECT_EQ(regions.add(region(0x30000, 0)), nullptr);    // empty: not kept
}

// 3000 regions of 64 bytes at the same low bits in four address spaces (as DRAM, L3, L2 and
// L1 addresses of a transfer between matching layouts): every one is found again after all
// were added, the index grows to its largest, and none is lost to a shared slot.
TEST(DmiRegions, EveryRegionIsFoundAgainHoweverManyShareTheirLowBits) {
    DmiRegions regions(64);
    const uint64_t spaces[] = {0, uint64_t(1) << 40, uint64_t(2) << 40, uint64_t(3) << 40};
    for (uint64_t i = 0; i < 750; ++i)
        for (uint64_t base : spaces) ASSERT_NE(regions.add(region(base + i * 4096, 64)), nullptr);
    EXPECT_EQ(regions.size(), 3000u);
    EXPECT_EQ(regions.slots(), DmiRegions::kMaxSlots);
    for (uint64_t i = 0; i < 750; ++i)
        for (uint64_t base : spaces) {
            const DmiRegion* r = regions.find(base + i * 4096 + 8, 8);
            ASSERT_NE(r, nullptr);
            EXPECT_EQ(r->lo, base + i * 4096);
        }
}

// A smaller region than the granule so far: the granule shrinks, every region stays found.
TEST(DmiRegions, ASmallerRegionShrinksTheGranuleAndTheLargerOnesStayFound) {
    DmiRegions regions;
    regions.add(region(0, 65536));
    EXPECT_EQ(regions.granule(), 65536u);
    for (uint64_t a = 65536; a < 65536 + 1024; a += 64) regions.add(region(a, 64));
    EXPECT_EQ(regions.granule(), 64u);
    EXPECT_EQ(regions.find(0, 65536)->lo, 0u);
    EXPECT_EQ(regions.find(40000, 4)->lo, 0u);
    for (uint64_t a = 65536; a < 65536 + 1024; a += 64) EXPECT_EQ(regions.find(a + 1, 63)->lo, a);
}

TEST(DmiRegions, AWiderGrantReplacesTheNarrowerOnesItCoversAndInvalidationForgetsOverlaps) {
    DmiRegions regions;
    for (uint64_t a = 0; a < 4096; a += 1024) regions.add(region(a, 1024));
    regions.add(region(8192, 1024));
    regions.add(region(0, 4096));  // covers the first four
    EXPECT_EQ(regions.find(1500, 100)->hi, 4096u);
    EXPECT_EQ(regions.find(2000, 2096)->lo, 0u);  // spans what were two regions
    regions.forget(4000, 8192);  // overlaps the wide one and the one at 8192
    EXPECT_EQ(regions.find(0, 1), nullptr);
    EXPECT_EQ(regions.find(8192, 1), nullptr);
    regions.add(region(0, 1024));
    EXPECT_NE(regions.find(0, 1024), nullptr);
}

TEST(DmiRegions, PastTheirLimitTheRegionsStartOver) {
    DmiRegions regions(64);
    for (uint64_t i = 0; i < DmiRegions::kMaxRegions; ++i) regions.add(region(i * 64, 64));
    EXPECT_EQ(regions.size(), DmiRegions::kMaxRegions);
    regions.add(region(uint64_t(1) << 30, 64));
    EXPECT_EQ(regions.size(), 1u);
    EXPECT_EQ(regions.find(0, 1), nullptr);
    EXPECT_NE(regions.find(uint64_t(1) << 30, 64), nullptr);
}

// A timed initiator copies through a region and books its stages itself: a grant with no
// stage (no memory filled in the path), one whose path overflowed, or one not both readable
// and writable would be timed wrong, so it is not one it may use.
TEST(DmiRegions, OnlyAReadWriteGrantWithACompleteFilledTimingPathIsTimed) {
    PortTimer memory(1, 8e9, 1e9, 10);
    DmiRegion r = region(0, 4096);
    EXPECT_FALSE(r.timed());  // no stage: would be timed as zero
    r.path.add(memory);
    EXPECT_TRUE(r.timed());
    DmiRegion read_only = r;
    read_only.writable = false;
    EXPECT_FALSE(read_only.timed());
    DmiRegion overflowed = r;
    for (int i = 0; i < 4; ++i) overflowed.path.add(memory);  // a fifth stage does not fit
    EXPECT_FALSE(overflowed.path.complete);
    EXPECT_FALSE(overflowed.timed());
}

}  // namespace
}  // namespace kpu::model
