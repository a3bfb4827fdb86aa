// Lazy storage: zeros without pages, pages only where written, byte-exact across pages.
#include <gtest/gtest.h>

#include <algorithm>
#include <numeric>
#include <vector>

#include "models/paged_storage.h"

namespace kpu::model {
namespace {

TEST(PagedStorage, UntouchedMemoryReadsZerosAndAllocatesNothing) {
    PagedStorage s(16ull << 30);  // a 16 GiB DRAM channel
    std::vector<uint8_t> out(256, 0xAA);
    s.read(12345678901ull, out.data(), out.size());
    EXPECT_EQ(std::count(out.begin(), out.end(), 0), 256);
    EXPECT_EQ(s.pages_allocated(), 0u);
}

TEST(PagedStorage, WriteAcrossAPageBoundaryRoundTripsAndAllocatesTwoPages) {
    PagedStorage s(1 << 20);
    std::vector<uint8_t> in(300), out(300);
    std::iota(in.begin(), in.end(), 1);
    const uint64_t at = s.page_bytes() - 100;
    s.write(at, in.data(), in.size());
    s.read(at, out.data(), out.size());
    EXPECT_EQ(in, out);
    EXPECT_EQ(s.pages_allocated(), 2u);
}

TEST(PagedStorage, SmallMemoryIsOnePageAndItsPointerCoversIt) {
    PagedStorage s(2048, 2048);
    uint64_t start = 1, len = 0;
    uint8_t* p = s.page(100, start, len);
    EXPECT_EQ(start, 0u);
    EXPECT_EQ(len, 2048u);
    p[2047] = 7;
    uint8_t b = 0;
    s.read(2047, &b, 1);
    EXPECT_EQ(b, 7);
}

// Fresh pages read as zeros around what was written, from calloc or from an arena, even
// after other storages dirtied and freed theirs (reused heap).
TEST(PagedStorage, FreshPagesReadAsZerosAroundWhatWasWritten) {
    PageArena arena;
    for (int round = 0; round < 3; ++round) {
        for (const uint64_t page : {uint64_t(64 * 1024), uint64_t(2048)}) {
            for (PageArena* pages : {static_cast<PageArena*>(nullptr), &arena}) {
                PagedStorage s(4 * page, page, pages);
                uint64_t start = 0, len = 0;
                uint8_t* p = s.page(page + 5, start, len);
                ASSERT_EQ(start, page);
                ASSERT_EQ(len, page);
                EXPECT_EQ(size_t(std::count(p, p + len, 0)), len) << page << " round " << round;
                std::fill(p, p + len, uint8_t(0xA5));  // dirty it before it is freed
                const uint8_t one = 1;
                s.write(3 * page + 1, &one, 1);
                std::vector<uint8_t> out(page);
                s.read(3 * page, out.data(), out.size());
                EXPECT_EQ(std::count(out.begin(), out.end(), 0), std::ptrdiff_t(page - 1)) << page;
                EXPECT_EQ(out[1], 1);
                EXPECT_EQ(s.pages_allocated(), 2u);
            }
        }
    }
}

// A platform's arena: zeroed pages, aligned, never overlapping, across mappings, and pages
// larger than a mapping get their own.
TEST(PageArena, PagesAreZeroAlignedDisjointAndOutliveTheStoragesThatUseThem) {
    PageArena arena;
    std::vector<std::pair<uint8_t*, uint64_t>> pages;
    uint64_t total = 0;
    for (int i = 0; total < 2 * PageArena::kChunkBytes; ++i) {  // 2 KiB and 64 KiB pages, interleaved
        const uint64_t bytes = i % 3 ? 2048 : 65536;
        uint8_t* p = arena.allocate(bytes);
        ASSERT_EQ(reinterpret_cast<uintptr_t>(p) % std::min<uint64_t>(bytes, 4096), 0u) << i;
        pages.push_back({p, bytes});
        total += bytes;
    }
    uint8_t* huge = arena.allocate(PageArena::kChunkBytes + 4096);
    pages.push_back({huge, PageArena::kChunkBytes + 4096});
    EXPECT_GE(arena.mapped_bytes(), 4 * PageArena::kChunkBytes);
    std::sort(pages.begin(), pages.end());
    for (size_t i = 1; i < pages.size(); ++i) ASSERT_LE(pages[i - 1].first + pages[i - 1].second, pages[i].first) << i;
    for (const auto& [p, bytes] : pages) {  // zero at both ends, then marked
        ASSERT_EQ(p[0], 0);
        ASSERT_EQ(p[bytes - 1], 0);
        p[0] = p[bytes - 1] = 0xA5;
    }
    {
        PagedStorage s(1 << 20, 0, &arena);
        const uint8_t one = 1;
        s.write(70000, &one, 1);
        std::vector<uint8_t> out(65536);
        s.read(65536, out.data(), out.size());
        EXPECT_EQ(std::count(out.begin(), out.end(), 0), 65535);
        EXPECT_EQ(out[70000 - 65536], 1);
        EXPECT_EQ(s.pages_allocated(), 1u);
    }  // the storage goes first; its page stays the arena's
    EXPECT_EQ(huge[0], 0xA5);
}

}  // namespace
}  // namespace kpu::model
