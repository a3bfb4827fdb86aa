#include "models/systolic_fabric.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <sstream>
#include <vector>

#include "hardware/fabric_timing.h"
#include "hardware/scalar_functions.h"

namespace kpu::model {

namespace {

const char* kMsgType = "kpu/fabric";

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
        // The data is read when the command starts; its dependencies guarantee it is there
        // until the command completes.
        const sc_core::sc_time started = sc_core::sc_time_stamp();
        const bool ok = command.drain ? execute_drain(command.drain_command) : execute_matmul(command.matmul);
        // Duration from the cycle count in one step, so long programs do not accumulate the
        // rounding of a per-cycle sc_time.
        const sc_core::sc_time duration(double(cycles) * period_s, sc_core::SC_SEC);
        wait(duration);
        if (pending_) helper_->wait(*pending_), pending_.reset();
        busy_ += duration;
        ++commands_;
        if (completion_) completion_(command.id, ok, started);
    }
}

bool SystolicFabric::operand_rows(uint64_t addr, uint32_t rows, uint32_t cols, uint32_t pitch,
                                  std::vector<float>& staging, std::vector<const float*>& out) {
    out.resize(rows);
    const uint64_t row_bytes = uint64_t(cols) * sizeof(float);
    // The region the last row was read in place from: the next rows are mostly in it too.
    const unsigned char* region = nullptr;
    uint64_t region_addr = 0, region_room = 0;
    for (uint32_t r = 0; r < rows; ++r) {
        const uint64_t at = addr + uint64_t(r) * pitch * sizeof(float);
        const unsigned char* in_place = nullptr;
        if (region && at - region_addr < region_room && row_bytes <= region_room - (at - region_addr)) {
            in_place = region + (at - region_addr);
        } else if ((in_place = l1_.readable_span(at, row_bytes, &region_room))) {
            region = in_place, region_addr = at;
        }
        if (in_place && reinterpret_cast<uintptr_t>(in_place) % alignof(float) == 0) {
            out[r] = reinterpret_cast<const float*>(in_place);
            continue;
        }
        // Staged only where a row cannot be read in place (no earlier row of this call is
        // staged when it grows): fabrics whose rows are all in place never fault it in.
        if (staging.size() < size_t(rows) * cols) staging.resize(size_t(rows) * cols);
        float* copy = staging.data() + size_t(r) * cols;
        if (!l1_.read(at, copy, row_bytes)) return false;
        out[r] = copy;
    }
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
    if (!operand_rows(c.a, c.m, c.k, c.lda, a_, a_rows_)) return refuse("A", c.a, uint64_t(c.m) * c.lda * 4);
    if (!operand_rows(c.b, c.k, c.n, c.ldb, b_, b_rows_)) return refuse("B", c.b, uint64_t(c.k) * c.ldb * 4);
    if (c.load_c && c.accumulate) {
        SC_REPORT_WARNING(kMsgType, (std::string(name()) + ": matmul asks for both accumulate and load_c").c_str());
        return false;
    }
    bool clear = false;  // the accumulators start from zero (cleared with the GEMM, on its thread)
    if (c.load_c) {
        if (c.ldc < c.n) {
            std::ostringstream msg;
            msg << name() << ": matmul load_c pitch ldc " << c.ldc << " < n " << c.n;
            SC_REPORT_WARNING(kMsgType, msg.str().c_str());
            return false;
        }
        acc_rows_ = c.m;
        acc_cols_ = c.n;
        acc_.resize(size_t(c.m) * c.n);
        for (uint32_t i = 0; i < c.m; ++i)
            if (!l1_.read(c.c + uint64_t(i) * c.ldc * sizeof(float), acc_.data() + size_t(i) * c.n,
                          uint64_t(c.n) * sizeof(float)))
                return refuse("C", c.c, uint64_t(c.m) * c.ldc * 4);
        l1_read_ += uint64_t(c.m) * c.n * sizeof(float);
    } else if (!c.accumulate || acc_rows_ != c.m || acc_cols_ != c.n) {
        if (c.accumulate) {
            std::ostringstream msg;
            msg << name() << ": accumulate into a " << c.m << "x" << c.n << " tile but the accumulators hold "
                << acc_rows_ << "x" << acc_cols_;
            SC_REPORT_WARNING(kMsgType, msg.str().c_str());
            return false;
        }
        acc_rows_ = c.m;
        acc_cols_ = c.n;
        acc_.resize(size_t(c.m) * c.n);
        clear = true;
    }
    auto job = [this, acc = acc_.data(), a = a_rows_.data(), b = b_rows_.data(), m = c.m, n = c.n, k = c.k, clear] {
        if (clear) std::fill(acc, acc + size_t(m) * n, 0.0f);
        gemm_(acc, n, a, b, m, n, k);
    };
    if (helper_)
        pending_ = helper_->submit(job);  // nothing the job reads or writes changes before run() waits for it
    else
        job();
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
    std::vector<float> bias(c.has_bias ? c.n : 0);
    if (c.has_bias && !l1_.read(c.bias, bias.data(), uint64_t(c.n) * sizeof(float)))
        return refuse("cannot read the bias from L1");
    if (c.has_bias) l1_read_ += uint64_t(c.n) * sizeof(float);
    std::vector<float> scale(c.has_scale ? c.n : 0);
    if (c.has_scale && !l1_.read(c.scale, scale.data(), uint64_t(c.n) * sizeof(float)))
        return refuse("cannot read the scale from L1");
    if (c.has_scale) l1_read_ += uint64_t(c.n) * sizeof(float);
    if (c.has_residual && c.ldr < c.n) return refuse("ldr " + std::to_string(c.ldr) + " < n " + std::to_string(c.n));
    std::vector<float> residual(c.has_residual ? c.n : 0);
    l1_written_ += uint64_t(c.m) * c.n * sizeof(float);
    out_.resize(c.n);
    for (uint32_t i = 0; i < c.m; ++i) {
        const float* row = acc_.data() + size_t(i) * c.n;
        if (c.has_residual) {
            const uint64_t at = c.residual + uint64_t(i) * c.ldr * sizeof(float);
            if (!l1_.read(at, residual.data(), uint64_t(c.n) * sizeof(float)))
                return refuse("cannot read residual row " + std::to_string(i) + " from L1");
            l1_read_ += uint64_t(c.n) * sizeof(float);
        }
        for (uint32_t j = 0; j < c.n; ++j) {
            const float sum = c.alpha == 1.0f ? row[j] : c.alpha * row[j];
            float v = sum + (!c.has_bias ? 0.0f : c.beta == 1.0f ? bias[j] : c.beta * bias[j]);
            if (c.has_scale) v = v * scale[j];
            if (c.has_residual) v = v + residual[j];
            out_[j] = hw::activate(v, c.activation);
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
