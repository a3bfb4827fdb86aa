#include "models/systolic_fabric.h"

#include <cmath>
#include <cstring>
#include <sstream>
#include <vector>

#include "models/fabric_timing.h"

namespace kpu::model {

namespace {

const char* kMsgType = "kpu/fabric";

/// Four floats in one vector register (SSE on x86-64, NEON on ARM; GCC/Clang vector
/// extension, so no intrinsics and no target flags beyond the project's).
typedef float Float4 __attribute__((vector_size(16)));

Float4 load4(const float* p) {
    Float4 v;
    std::memcpy(&v, p, sizeof v);
    return v;
}

void store4(float* p, Float4 v) { std::memcpy(p, &v, sizeof v); }

/// C[m x n] += A[m x k] * B[k x n] for an R x 4V block of C held in registers while k
/// streams: per element the same multiply-then-add in the same p order as a plain i-k-j
/// loop, so the sums are bit for bit those of that loop (and of the hardware's PE chain).
template <int R, int V>
void gemm_block(float* c, uint32_t ldc, const float* a, uint32_t lda, const float* b, uint32_t ldb, uint32_t k) {
    Float4 acc[R][V];
    for (int r = 0; r < R; ++r)
        for (int v = 0; v < V; ++v) acc[r][v] = load4(c + size_t(r) * ldc + 4 * v);
    for (uint32_t p = 0; p < k; ++p) {
        Float4 bv[V];
        for (int v = 0; v < V; ++v) bv[v] = load4(b + size_t(p) * ldb + 4 * v);
        for (int r = 0; r < R; ++r) {
            const float x = a[size_t(r) * lda + p];
            const Float4 av = {x, x, x, x};
            for (int v = 0; v < V; ++v) acc[r][v] += av * bv[v];
        }
    }
    for (int r = 0; r < R; ++r)
        for (int v = 0; v < V; ++v) store4(c + size_t(r) * ldc + 4 * v, acc[r][v]);
}

/// The plain i-k-j loop, for the edges the register blocks do not cover.
void gemm_edge(float* c, uint32_t ldc, const float* a, uint32_t lda, const float* b, uint32_t ldb, uint32_t m,
               uint32_t n, uint32_t k) {
    for (uint32_t i = 0; i < m; ++i) {
        float* __restrict crow = c + size_t(i) * ldc;
        const float* arow = a + size_t(i) * lda;
        for (uint32_t p = 0; p < k; ++p) {
            const float av = arow[p];
            const float* __restrict brow = b + size_t(p) * ldb;
            for (uint32_t j = 0; j < n; ++j) crow[j] += av * brow[j];
        }
    }
}

/// C[m x n] += A[m x k] * B[k x n]: the fabric's arithmetic, not the reference the tests
/// compare with. Two rows by sixteen columns of C stay in registers while k streams; each
/// sixteen-column panel of B is packed (k x 64 contiguous bytes, so it sits in the L1 cache
/// without set conflicts whatever ldb is) and reused by every row pair. About twice the
/// speed of the i-k-j loop it replaces, with the same bits.
void gemm_accumulate(float* c, uint32_t ldc, const float* a, uint32_t lda, const float* b, uint32_t ldb, uint32_t m,
                     uint32_t n, uint32_t k) {
    const uint32_t m2 = m / 2 * 2;
    uint32_t j = 0;
    if (n >= 16) {
        std::vector<float> panel(size_t(k) * 16);
        for (; j + 16 <= n; j += 16) {
            for (uint32_t p = 0; p < k; ++p) std::memcpy(&panel[size_t(p) * 16], b + size_t(p) * ldb + j, 16 * sizeof(float));
            for (uint32_t i = 0; i < m2; i += 2)
                gemm_block<2, 4>(c + size_t(i) * ldc + j, ldc, a + size_t(i) * lda, lda, panel.data(), 16, k);
            if (m2 < m) gemm_block<1, 4>(c + size_t(m2) * ldc + j, ldc, a + size_t(m2) * lda, lda, panel.data(), 16, k);
        }
    }
    for (; j + 4 <= n; j += 4) {
        for (uint32_t i = 0; i < m2; i += 2)
            gemm_block<2, 1>(c + size_t(i) * ldc + j, ldc, a + size_t(i) * lda, lda, b + j, ldb, k);
        if (m2 < m) gemm_block<1, 1>(c + size_t(m2) * ldc + j, ldc, a + size_t(m2) * lda, lda, b + j, ldb, k);
    }
    if (j < n) gemm_edge(c + j, ldc, a, lda, b + j, ldb, m, n - j, k);
}

float gelu(float x) {
    constexpr float kSqrt2OverPi = 0.7978845608028654f;
    return 0.5f * x * (1.0f + std::tanh(kSqrt2OverPi * (x + 0.044715f * x * x * x)));
}

}  // namespace

SystolicFabric::SystolicFabric(sc_core::sc_module_name name, const hw::Config& config)
    : sc_core::sc_module(name),
      l1_socket("l1_socket"),
      config_(config),
      cycle_(sc_core::sc_time(1.0 / config.clocks.fabric_hz, sc_core::SC_SEC)),
      l1_(l1_socket) {
    l1_socket.register_invalidate_direct_mem_ptr(this, &SystolicFabric::invalidate_direct_mem_ptr);
    SC_HAS_PROCESS(SystolicFabric);
    SC_THREAD(run);
}

void SystolicFabric::submit(const Command& command) {
    queue_.push_back(command);
    queued_.notify(sc_core::SC_ZERO_TIME);
}

void SystolicFabric::invalidate_direct_mem_ptr(sc_dt::uint64 start, sc_dt::uint64 end) { l1_.invalidate(start, end); }

void SystolicFabric::run() {
    const double period_s = 1.0 / config_.clocks.fabric_hz;
    for (;;) {
        while (queue_.empty()) wait(queued_);
        const Command command = queue_.front();
        queue_.pop_front();
        const uint64_t cycles = command.drain ? drain_cycles(command.drain_command, config_.fabric.rows, config_.fabric.cols)
                                              : matmul_cycles(command.matmul, config_.fabric.rows, config_.fabric.cols);
        // The data is read when the command starts; its dependencies guarantee it is there.
        const sc_core::sc_time started = sc_core::sc_time_stamp();
        const bool ok = command.drain ? execute_drain(command.drain_command) : execute_matmul(command.matmul);
        // Duration from the cycle count in one step, so long programs do not accumulate the
        // rounding of a per-cycle sc_time.
        const sc_core::sc_time duration(double(cycles) * period_s, sc_core::SC_SEC);
        wait(duration);
        busy_ += duration;
        ++commands_;
        if (completion_) completion_(command.id, ok, started);
    }
}

bool SystolicFabric::load_tile(uint64_t addr, uint32_t rows, uint32_t cols, uint32_t pitch, std::vector<float>& out) {
    out.resize(size_t(rows) * cols);
    const uint64_t row_bytes = uint64_t(cols) * sizeof(float);
    if (pitch == cols) return l1_.read(addr, out.data(), rows * row_bytes);
    for (uint32_t r = 0; r < rows; ++r)
        if (!l1_.read(addr + uint64_t(r) * pitch * sizeof(float), out.data() + size_t(r) * cols, row_bytes))
            return false;
    return true;
}

bool SystolicFabric::execute_matmul(const hw::MatmulCommand& c) {
    auto refuse = [&](const char* what, uint64_t addr, uint64_t bytes) {
        std::ostringstream msg;
        msg << name() << ": cannot read operand " << what << " at 0x" << std::hex << addr << std::dec << " ("
            << bytes << " bytes) from L1";
        SC_REPORT_WARNING(kMsgType, msg.str().c_str());
        return false;
    };
    if (c.lda < c.k || c.ldb < c.n) {
        std::ostringstream msg;
        msg << name() << ": matmul pitch smaller than the tile (lda " << c.lda << " < k " << c.k << " or ldb " << c.ldb
            << " < n " << c.n << ")";
        SC_REPORT_WARNING(kMsgType, msg.str().c_str());
        return false;
    }
    if (!load_tile(c.a, c.m, c.k, c.lda, a_)) return refuse("A", c.a, uint64_t(c.m) * c.lda * 4);
    if (!load_tile(c.b, c.k, c.n, c.ldb, b_)) return refuse("B", c.b, uint64_t(c.k) * c.ldb * 4);
    if (!c.accumulate || acc_rows_ != c.m || acc_cols_ != c.n) {
        if (c.accumulate) {
            std::ostringstream msg;
            msg << name() << ": accumulate into a " << c.m << "x" << c.n << " tile but the accumulators hold "
                << acc_rows_ << "x" << acc_cols_;
            SC_REPORT_WARNING(kMsgType, msg.str().c_str());
            return false;
        }
        acc_rows_ = c.m;
        acc_cols_ = c.n;
        acc_.assign(size_t(c.m) * c.n, 0.0f);
    }
    gemm_accumulate(acc_.data(), c.n, a_.data(), c.k, b_.data(), c.n, c.m, c.n, c.k);
    macs_ += uint64_t(c.m) * c.n * c.k;
    l1_read_ += (uint64_t(c.m) * c.k + uint64_t(c.k) * c.n) * sizeof(float);
    return true;
}

bool SystolicFabric::execute_drain(const hw::DrainCommand& c) {
    auto refuse = [&](const std::string& why) {
        SC_REPORT_WARNING(kMsgType, (std::string(name()) + ": drain refused: " + why).c_str());
        return false;
    };
    if (c.m != acc_rows_ || c.n != acc_cols_)
        return refuse("asks for " + std::to_string(c.m) + "x" + std::to_string(c.n) + " but the accumulators hold " +
                      std::to_string(acc_rows_) + "x" + std::to_string(acc_cols_));
    if (c.ldc < c.n) return refuse("ldc " + std::to_string(c.ldc) + " < n " + std::to_string(c.n));
    std::vector<float> bias;
    if (c.has_bias && !load_tile(c.bias, 1, c.n, c.n, bias)) return refuse("cannot read the bias from L1");
    if (c.has_bias) l1_read_ += uint64_t(c.n) * sizeof(float);
    l1_written_ += uint64_t(c.m) * c.n * sizeof(float);
    out_.resize(c.n);
    for (uint32_t i = 0; i < c.m; ++i) {
        const float* row = acc_.data() + size_t(i) * c.n;
        for (uint32_t j = 0; j < c.n; ++j) {
            float v = row[j] + (c.has_bias ? bias[j] : 0.0f);
            if (c.activation == hw::Activation::Relu) v = v > 0 ? v : 0;
            if (c.activation == hw::Activation::Gelu) v = gelu(v);
            out_[j] = v;
        }
        if (!l1_.write(c.c + uint64_t(i) * c.ldc * sizeof(float), out_.data(), uint64_t(c.n) * sizeof(float))) {
            std::ostringstream where;
            where << "cannot write row " << i << " at 0x" << std::hex << c.c + uint64_t(i) * c.ldc * 4 << " to L1";
            return refuse(where.str());
        }
    }
    return true;
}

}  // namespace kpu::model
