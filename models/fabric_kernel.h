// GemmKernel: the systolic fabric's arithmetic, C[m x n] += A[m x k] B[k x n] in fp32, in the
// host's widest vectors. Per C element it does what the hardware's PE chain does and what a
// plain i-k-j loop does: for p = 0..k-1 one multiply, then one add into the running sum, never
// fused (this file is built with -ffp-contract=off). So the sums are the same bits whichever
// instruction set runs them (tests/models/fabric_kernel_test.cpp: GemmKernel.*).
// A and B come as row pointers, so the fabric reads its operands where they lie in L1.
#pragma once

#include <cstdint>
#include <vector>

namespace kpu::model {

class GemmKernel {
public:
    /// Picks the widest vector instructions this host runs (AVX-512, AVX2, else the baseline).
    GemmKernel();
    /// Forces the baseline instructions (for the tests that compare the two paths).
    static GemmKernel baseline();

    /// C (row pitch ldc floats) += A B, with a_rows[i] the k floats of row i of A and
    /// b_rows[p] the n floats of row p of B.
    void operator()(float* c, uint32_t ldc, const float* const* a_rows, const float* const* b_rows, uint32_t m,
                    uint32_t n, uint32_t k);

    const char* isa() const { return isa_; }  ///< "avx512", "avx2" or "baseline"

private:
    using Fn = void (*)(float*, uint32_t, const float* const*, const float* const*, uint32_t, uint32_t, uint32_t,
                        float* panel);
    GemmKernel(Fn fn, const char* isa) : fn_(fn), isa_(isa) {}
    Fn fn_;
    const char* isa_;
    std::vector<float> panel_;  ///< one packed 16-column panel of B, reused
};

}  // namespace kpu::model
