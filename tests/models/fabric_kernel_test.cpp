// The fabric's GEMM kernel against the plain i-k-j loop, bit for bit, on the host's widest
// vector path and on the baseline one. Both multiply then add in k order per element, so any
// fused multiply-add or reordering shows up as differing bits. (This file is built with
// -ffp-contract=off too, so the reference loop is not fused either.)
#include "models/fabric_kernel.h"

#include <cstring>
#include <random>
#include <string>

#include <gtest/gtest.h>

namespace kpu::model {
namespace {

struct Case {
    uint32_t m, n, k;
};

void check(GemmKernel& kernel, Case s, unsigned seed) {
    std::mt19937 gen(seed);
    std::uniform_real_distribution<float> dist(-2.0f, 2.0f);
    // Operands at odd pitches, as tiles inside larger L1 buffers are; C accumulates onto
    // non-zero values.
    const uint32_t lda = s.k + 3, ldb = s.n + 5, ldc = s.n + 2;
    std::vector<float> a(size_t(s.m) * lda), b(size_t(s.k) * ldb), c(size_t(s.m) * ldc);
    for (auto* v : {&a, &b, &c})
        for (float& x : *v) x = dist(gen);
    std::vector<float> expected = c;
    for (uint32_t i = 0; i < s.m; ++i)
        for (uint32_t p = 0; p < s.k; ++p)
            for (uint32_t j = 0; j < s.n; ++j) expected[size_t(i) * ldc + j] += a[size_t(i) * lda + p] * b[size_t(p) * ldb + j];
    std::vector<const float*> a_rows(s.m), b_rows(s.k);
    for (uint32_t i = 0; i < s.m; ++i) a_rows[i] = a.data() + size_t(i) * lda;
    for (uint32_t p = 0; p < s.k; ++p) b_rows[p] = b.data() + size_t(p) * ldb;
    kernel(c.data(), ldc, a_rows.data(), b_rows.data(), s.m, s.n, s.k);
    for (uint32_t i = 0; i < s.m; ++i)
        for (uint32_t j = 0; j < ldc; ++j) {
            const size_t at = size_t(i) * ldc + j;
            ASSERT_EQ(std::memcmp(&c[at], &expected[at], sizeof(float)), 0)
                << kernel.isa() << " " << s.m << "x" << s.n << "x" << s.k << " at (" << i << ", " << j
                << "): " << c[at] << " vs " << expected[at];
        }
}

const Case kShapes[] = {{1, 1, 1},   {2, 3, 5},    {7, 16, 9},   {8, 17, 33},  {9, 31, 64},
                        {16, 16, 16}, {17, 48, 100}, {64, 32, 256}, {33, 65, 7}, {3, 15, 1}};

TEST(GemmKernel, HostPathHasTheBitsOfThePlainLoop) {
    GemmKernel kernel;
    const std::string isa = kernel.isa();
    EXPECT_TRUE(isa == "avx512" || isa == "avx2" || isa == "baseline") << isa;
    unsigned seed = 1;
    for (const Case& s : kShapes) check(kernel, s, seed++);
}

TEST(GemmKernel, BaselinePathHasTheBitsOfThePlainLoop) {
    GemmKernel kernel = GemmKernel::baseline();
    EXPECT_STREQ(kernel.isa(), "baseline");
    unsigned seed = 1;
    for (const Case& s : kShapes) check(kernel, s, seed++);
}

TEST(GemmKernel, ReusesItsPanelAcrossShrinkingAndGrowingK) {
    GemmKernel kernel;
    check(kernel, {20, 40, 300}, 7);
    check(kernel, {20, 40, 3}, 8);
    check(kernel, {5, 64, 500}, 9);
}

}  // namespace
}  // namespace kpu::model
