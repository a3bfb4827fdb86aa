#include "models/fabric_kernel.h"

#include <cstring>

namespace kpu::model {

namespace {

// GCC/Clang vector extension: one type per width, no intrinsics. A function compiled for a
// narrower target splits the wide types into what it has.
typedef float V4 __attribute__((vector_size(16)));
typedef float V8 __attribute__((vector_size(32)));
typedef float V16 __attribute__((vector_size(64)));

#define KPU_INLINE inline __attribute__((always_inline))

/// An R x (Vn lanes) block of C held in registers while k streams. b: row p of the block's
/// columns at b + p * ldb. Per element: multiply, then add, in p order.
template <typename V, int R, int Vn>
KPU_INLINE void gemm_block(float* c, uint32_t ldc, const float* const* a, const float* b, uint32_t ldb, uint32_t k) {
    constexpr int L = int(sizeof(V) / sizeof(float));
    V acc[R][Vn];
    for (int r = 0; r < R; ++r)
        for (int v = 0; v < Vn; ++v) std::memcpy(&acc[r][v], c + size_t(r) * ldc + L * v, sizeof(V));
    for (uint32_t p = 0; p < k; ++p) {
        V bv[Vn];
        for (int v = 0; v < Vn; ++v) std::memcpy(&bv[v], b + size_t(p) * ldb + L * v, sizeof(V));
        for (int r = 0; r < R; ++r) {
            const float x = a[r][p];
            for (int v = 0; v < Vn; ++v) acc[r][v] += bv[v] * x;  // the scalar is broadcast exactly
        }
    }
    for (int r = 0; r < R; ++r)
        for (int v = 0; v < Vn; ++v) std::memcpy(c + size_t(r) * ldc + L * v, &acc[r][v], sizeof(V));
}

/// Each 16-column panel of B is packed (k x 64 contiguous bytes: it stays in the L1 cache
/// without set conflicts) and reused by every block of R rows; columns past the last full
/// panel go one at a time.
template <typename V, int R>
KPU_INLINE void gemm(float* c, uint32_t ldc, const float* const* a, const float* const* b, uint32_t m, uint32_t n,
                     uint32_t k, float* panel) {
    constexpr uint32_t kPanel = 16;
    constexpr int Vn = int(kPanel * sizeof(float) / sizeof(V));
    const uint32_t m_blocks = m / R * R;
    uint32_t j = 0;
    for (; j + kPanel <= n; j += kPanel) {
        for (uint32_t p = 0; p < k; ++p) std::memcpy(panel + size_t(p) * kPanel, b[p] + j, kPanel * sizeof(float));
        uint32_t i = 0;
        for (; i < m_blocks; i += R) gemm_block<V, R, Vn>(c + size_t(i) * ldc + j, ldc, a + i, panel, kPanel, k);
        for (; i < m; ++i) gemm_block<V, 1, Vn>(c + size_t(i) * ldc + j, ldc, a + i, panel, kPanel, k);
    }
    for (; j < n; ++j)  // the last n % 16 columns, one at a time
        for (uint32_t i = 0; i < m; ++i) {
            float sum = c[size_t(i) * ldc + j];
            const float* arow = a[i];
            for (uint32_t p = 0; p < k; ++p) sum += arow[p] * b[p][j];
            c[size_t(i) * ldc + j] = sum;
        }
}

void gemm_baseline(float* c, uint32_t ldc, const float* const* a, const float* const* b, uint32_t m, uint32_t n,
                   uint32_t k, float* panel) {
    gemm<V4, 2>(c, ldc, a, b, m, n, k, panel);
}

#if defined(__x86_64__) || defined(__i386__)
#define KPU_GEMM_X86 1
__attribute__((target("avx2"))) void gemm_avx2(float* c, uint32_t ldc, const float* const* a, const float* const* b,
                                               uint32_t m, uint32_t n, uint32_t k, float* panel) {
    gemm<V8, 4>(c, ldc, a, b, m, n, k, panel);
}

__attribute__((target("avx512f"))) void gemm_avx512(float* c, uint32_t ldc, const float* const* a,
                                                    const float* const* b, uint32_t m, uint32_t n, uint32_t k,
                                                    float* panel) {
    gemm<V16, 8>(c, ldc, a, b, m, n, k, panel);
}
#endif

}  // namespace

GemmKernel::GemmKernel() : GemmKernel(gemm_baseline, "baseline") {
#ifdef KPU_GEMM_X86
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f"))
        fn_ = gemm_avx512, isa_ = "avx512";
    else if (__builtin_cpu_supports("avx2"))
        fn_ = gemm_avx2, isa_ = "avx2";
#endif
}

GemmKernel GemmKernel::baseline() { return GemmKernel(gemm_baseline, "baseline"); }

void GemmKernel::operator()(float* c, uint32_t ldc, const float* const* a_rows, const float* const* b_rows, uint32_t m,
                            uint32_t n, uint32_t k) {
    if (panel_.size() < size_t(k) * 16) panel_.resize(size_t(k) * 16);
    fn_(c, ldc, a_rows, b_rows, m, n, k, panel_.data());
}

}  // namespace kpu::model
