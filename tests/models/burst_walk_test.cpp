// The burst walks without a kernel: which descriptors are refused and why, that bursts cut at
// both sides' boundaries cover exactly the transfer's bytes, that walking a contiguous
// transfer as one row gives the bursts of the row-by-row walk, and that a transpose's bands
// and columns put every element where a plain loop does.
#include <gtest/gtest.h>

#include <string>
#include <tuple>
#include <vector>

#include "models/burst_walk.h"

namespace kpu::model {
namespace {

hw::Transfer copy(uint64_t src, uint64_t dst, uint32_t rows, uint32_t row_bytes, uint64_t src_stride,
                  uint64_t dst_stride) {
    hw::Transfer t;
    t.src = src, t.dst = dst, t.rows = rows, t.row_bytes = row_bytes, t.src_stride = src_stride, t.dst_stride = dst_stride;
    return t;
}

hw::Transfer transpose(uint32_t rows, uint32_t row_bytes, uint64_t dst_stride, uint32_t elem_bytes) {
    hw::Transfer t = copy(0, 1 << 20, rows, row_bytes, row_bytes, dst_stride);
    t.transform = hw::Transform::Transpose;
    t.elem_bytes = elem_bytes;
    return t;
}

TEST(BurstWalk, ADescriptorThatMakesNoSenseIsRefusedWithItsReason) {
    const struct {
        hw::Transfer transfer;
        const char* problem;  ///< nullptr: legal
    } cases[] = {
        {copy(0, 4096, 4, 64, 64, 64), nullptr},
        {copy(0, 4096, 1, 64, 0, 0), nullptr},  // one row: strides do not matter
        {copy(0, 4096, 0, 64, 64, 64), "empty transfer (rows or row_bytes is 0)"},
        {copy(0, 4096, 4, 0, 64, 64), "empty transfer (rows or row_bytes is 0)"},
        {copy(0, 4096, 4, 64, 32, 64), "src_stride is smaller than row_bytes"},
        {copy(~uint64_t(0) - 100, 0, 2, 64, 64, 64), "source range wraps around the address space"},
        {copy(0, 4096, 4, 64, 64, 32), "destination rows overlap (dst_stride < row_bytes)"},
        {copy(0, ~uint64_t(0) - 100, 2, 64, 64, 64), "destination range wraps around the address space"},
        {transpose(4, 64, 16, 4), nullptr},
        {transpose(4, 64, 16, 3), "transpose needs elem_bytes a power of two <= 64"},
        {transpose(4, 64, 16, 128), "transpose needs elem_bytes a power of two <= 64"},
        {transpose(4, 66, 16, 4), "transpose needs row_bytes a multiple of elem_bytes"},
        {transpose(4, 64, 8, 4), "destination rows overlap (dst_stride < rows * elem_bytes)"},
    };
    for (const auto& c : cases) {
        const char* problem = transfer_problem(c.transfer);
        EXPECT_EQ(std::string(problem ? problem : "legal"), std::string(c.problem ? c.problem : "legal"))
            << c.transfer.rows << " rows of " << c.transfer.row_bytes << ", strides " << c.transfer.src_stride << "/"
            << c.transfer.dst_stride;
    }
}

using Burst = std::tuple<uint64_t, uint64_t, uint32_t>;  ///< src, dst, bytes

/// The bursts of an identity copy walked as `walk` says.
std::vector<Burst> bursts(const hw::Transfer& t, RowWalk walk, uint32_t burst) {
    std::vector<Burst> out;
    for (uint64_t r = 0; r < walk.rows; ++r)
        for (uint64_t src = t.src + r * t.src_stride, dst = t.dst + r * t.dst_stride, left = walk.row_bytes; left;) {
            const uint32_t n = burst_piece(src, dst, left, burst);
            out.emplace_back(src, dst, n);
            src += n, dst += n, left -= n;
        }
    return out;
}

// Every small transfer: each byte of every row lands at its place once, no burst crosses a
// burst boundary on either side, and a contiguous transfer walked as one row is cut exactly
// where the row-by-row walk cuts it.
TEST(BurstWalk, BurstsCoverEveryByteOnceWithinBoundariesAndAContiguousWalkCutsAsRowsDo) {
    constexpr uint32_t kBurst = 16;
    int contiguous_walks = 0;
    for (uint64_t src : {0, 3, 16, 21})
        for (uint64_t dst : {0, 5, 32})
            for (uint32_t rows : {1, 2, 5})
                for (uint32_t row_bytes : {1, 16, 20, 48})
                    for (uint64_t extra : {0, 7}) {
                        const hw::Transfer t = copy(src, 1024 + dst, rows, row_bytes, row_bytes + extra, row_bytes + extra);
                        const RowWalk walk = identity_rows(t, kBurst);
                        const std::vector<Burst> walked = bursts(t, walk, kBurst);
                        const std::vector<Burst> by_rows = bursts(t, {t.rows, t.row_bytes}, kBurst);
                        if (walk.rows == 1 && rows > 1) ++contiguous_walks;
                        EXPECT_EQ(walked, by_rows) << "src " << src << " dst " << dst << " rows " << rows << " of "
                                                   << row_bytes << " stride +" << extra;
                        std::vector<int> landed(4096, -1);
                        for (const auto& [s, d, n] : walked) {
                            EXPECT_LE(s % kBurst + n, kBurst);
                            EXPECT_LE(d % kBurst + n, kBurst);
                            for (uint32_t i = 0; i < n; ++i) {
                                EXPECT_EQ(landed[d + i], -1) << "written twice";
                                landed[d + i] = int(s + i);
                            }
                        }
                        for (uint32_t r = 0; r < rows; ++r)
                            for (uint32_t i = 0; i < row_bytes; ++i)
                                EXPECT_EQ(landed[t.dst + r * t.dst_stride + i], int(t.src + r * t.src_stride + i));
                    }
    EXPECT_GT(contiguous_walks, 0);  // the merge was exercised
}

// A rows x cols matrix of elements of 1 to 8 bytes, read in bands and written column by
// column: element (r, c) lands at (c, r) of the destination, as a plain loop puts it.
TEST(BurstWalk, ATransposesBandsAndColumnsPutEveryElementWhereAPlainLoopDoes) {
    for (uint32_t elem : {1u, 2u, 4u, 8u})
        for (uint32_t rows : {1u, 7u, 33u}) {
            const uint32_t cols = 5, burst = 32;
            const hw::Transfer t = transpose(rows, cols * elem, uint64_t(rows) * elem, elem);
            std::vector<uint8_t> source(uint64_t(rows) * cols * elem);
            for (size_t i = 0; i < source.size(); ++i) source[i] = uint8_t(i * 13 + 7);
            std::vector<uint8_t> expected(source.size()), got(source.size(), 0);
            for (uint32_t r = 0; r < rows; ++r)
                for (uint32_t c = 0; c < cols; ++c)
                    for (uint32_t b = 0; b < elem; ++b)
                        expected[(uint64_t(c) * rows + r) * elem + b] = source[(uint64_t(r) * cols + c) * elem + b];

            const uint32_t band = transpose_band(t, burst);
            EXPECT_EQ(band, std::max(1u, burst / elem));
            std::vector<uint8_t> column(uint64_t(band) * elem);
            for (uint32_t r0 = 0; r0 < rows; r0 += band) {
                const uint32_t h = std::min(band, rows - r0);
                const uint8_t* band_rows = source.data() + uint64_t(r0) * t.row_bytes;  // as read
                for (uint32_t c = 0; c < cols; ++c) {
                    gather_column(band_rows, t.row_bytes, h, c, elem, column.data());
                    std::copy(column.begin(), column.begin() + uint64_t(h) * elem,
                              got.begin() + int64_t(c * t.dst_stride + uint64_t(r0) * elem));
                }
            }
            EXPECT_EQ(got, expected) << rows << " rows of " << cols << " elements of " << elem << " bytes";
        }
}

hw::Transfer gather(uint32_t rows, uint32_t before, uint32_t after, hw::TransferDim o0, hw::TransferDim o1) {
    hw::Transfer t = copy(1 << 16, 1 << 20, rows, 12, 40, 16);
    t.row_pad_before = before, t.row_pad_after = after;
    t.outer[0] = o0, t.outer[1] = o1;
    return t;
}

TEST(BurstWalk, AGatherWithZeroFillIsRefusedWithItsReasonWhenItMakesNoSense) {
    const hw::TransferDim one;
    const struct {
        hw::Transfer transfer;
        const char* problem;
    } cases[] = {
        {gather(4, 1, 1, {3, 400, 64, 1, 0}, {2, 4000, 192, 0, 1}), nullptr},
        {gather(4, 4, 0, one, one), nullptr},  // all zero fill: nothing read
        {gather(4, 3, 2, one, one), "row padding exceeds the rows"},
        {gather(4, 0, 0, {0, 400, 64, 0, 0}, one), "empty transfer (an outer count is 0)"},
        {gather(4, 0, 0, {3, 400, 64, 2, 2}, one), "outer padding exceeds its count"},
        {gather(4, 0, 0, {3, 400, 50, 1, 0}, one), "destination blocks overlap (outer dst_stride < the block inside)"},
        {gather(4, 0, 0, {3, 400, 64, 0, 0}, {2, 4000, 100, 0, 0}),
         "destination blocks overlap (outer dst_stride < the block inside)"},
        {[&] {
             hw::Transfer t = gather(4, 0, 0, {2, 1 << 20, 64, 0, 0}, one);
             t.src = ~uint64_t(0) - 4096;
             return t;
         }(),
         "source range wraps around the address space"},
    };
    for (const auto& c : cases) {
        const char* problem = transfer_problem(c.transfer);
        EXPECT_EQ(std::string(problem ? problem : "legal"), std::string(c.problem ? c.problem : "legal"));
    }
    hw::Transfer t = gather(4, 1, 0, one, one);
    t.transform = hw::Transform::Transpose;
    EXPECT_STREQ(transfer_problem(t), "zero fill and outer dimensions need the identity transform");
}

// for_each_row against a plain loop over the four indices: the order, the zero rows and every
// valid row's source and destination.
TEST(BurstWalk, AGathersRowsAreThoseOfAPlainLoopOverItsFourDimensions) {
    const hw::Transfer t = gather(5, 2, 1, {4, 1000, 5 * 16, 1, 1}, {3, 9000, 4 * 5 * 16, 0, 2});
    ASSERT_EQ(transfer_problem(t), nullptr);
    std::vector<std::tuple<bool, uint64_t, uint64_t>> walked, looped;
    for_each_row(t, [&](bool zero, uint64_t src, uint64_t dst) { walked.emplace_back(zero, zero ? 0 : src, dst); });
    uint64_t valid = 0;
    for (uint32_t j = 0; j < 3; ++j)
        for (uint32_t i = 0; i < 4; ++i)
            for (uint32_t r = 0; r < 5; ++r) {
                const bool ok = j < 1 && i >= 1 && i < 3 && r >= 2 && r < 4;
                const uint64_t src = t.src + (j - 0) * 9000 + (i - 1) * 1000 + (r - 2) * 40;
                looped.emplace_back(!ok, ok ? src : 0, t.dst + j * 320 + i * 80 + r * 16);
                valid += ok;
            }
    EXPECT_EQ(walked, looped);
    EXPECT_EQ(t.valid_rows(), valid);
    EXPECT_EQ(t.bytes(), 60u * 12);
    EXPECT_EQ(t.dst_extent(), 2 * 320 + 3 * 80 + 4 * 16 + 12u);
    EXPECT_EQ(t.src_extent(), 1000 + 40 + 12u);
}

}  // namespace
}  // namespace kpu::model
