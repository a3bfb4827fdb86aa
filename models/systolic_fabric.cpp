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
        const uint64_t cycles =
            command.drain ? drain_cycles(command.drain_command, config_.fabric.rows, config_.fabric.cols)
                          : matmul_cycles(command.matmul, config_.fabric.rows, config_.fabric.cols,
                                          std::max(1u, macs_per_cycle(command.matmul.type)));
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

uint32_t SystolicFabric::macs_per_cycle(hw::DType type, std::string* why) const {
    if (type == hw::DType::Float32) return 1;  // every config computes it, at one MAC per PE per cycle
    try {
        return config_.fabric_type(hw::to_string(type)).ops_per_cycle;
    } catch (const hw::ConfigError& e) {
        if (why) *why = e.what();
        return 0;
    }
}

bool SystolicFabric::widened_rows(uint64_t addr, uint32_t rows, uint32_t cols, uint32_t pitch, hw::DType type,
                                  std::vector<float>& staging, std::vector<const float*>& out) {
    const uint64_t size = hw::dtype_bytes(type), row_bytes = uint64_t(cols) * size;
    const hw::Encoding encoding{type};
    if (raw_.size() < row_bytes) raw_.resize(row_bytes);
    if (staging.size() < size_t(rows) * cols) staging.resize(size_t(rows) * cols);
    out.resize(rows);
    for (uint32_t r = 0; r < rows; ++r) {
        if (!l1_.read(addr + uint64_t(r) * pitch * size, raw_.data(), row_bytes)) return false;
        float* row = staging.data() + size_t(r) * cols;
        for (uint32_t j = 0; j < cols; ++j) row[j] = hw::load_element(raw_.data() + j * size, encoding);
        out[r] = row;
    }
    return true;
}

bool SystolicFabric::offset_rows(uint64_t addr, uint32_t rows, uint32_t cols, uint32_t pitch, int32_t zero,
                                 std::vector<int32_t>& out) {
    if (raw_.size() < cols) raw_.resize(cols);
    out.resize(size_t(rows) * cols);
    for (uint32_t r = 0; r < rows; ++r) {
        if (!l1_.read(addr + uint64_t(r) * pitch, raw_.data(), cols)) return false;
        int32_t* row = out.data() + size_t(r) * cols;
        for (uint32_t j = 0; j < cols; ++j) row[j] = int32_t(int8_t(raw_[j])) - zero;
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
    if (c.type != hw::DType::Float32) {
        std::string why;
        if (macs_per_cycle(c.type, &why) == 0) {
            SC_REPORT_WARNING(kMsgType, (std::string(name()) + ": matmul refused: " + why).c_str());
            return false;
        }
        if (c.type == hw::DType::Int8) return execute_int8(c);
    }
    const uint64_t size = hw::dtype_bytes(c.type);
    const bool read = c.type == hw::DType::Float32
                          ? operand_rows(c.a, c.m, c.k, c.lda, a_, a_rows_)
                          : widened_rows(c.a, c.m, c.k, c.lda, c.type, a_, a_rows_);
    if (!read) return refuse("A", c.a, uint64_t(c.m) * c.lda * size);
    if (!(c.type == hw::DType::Float32 ? operand_rows(c.b, c.k, c.n, c.ldb, b_, b_rows_)
                                       : widened_rows(c.b, c.k, c.n, c.ldb, c.type, b_, b_rows_)))
        return refuse("B", c.b, uint64_t(c.k) * c.ldb * size);
    if (c.load_c && c.accumulate) {
        SC_REPORT_WARNING(kMsgType, (std::string(name()) + ": matmul asks for both accumulate and load_c").c_str());
        return false;
    }
    if (c.accumulate && int_acc_) {
        SC_REPORT_WARNING(kMsgType, (std::string(name()) + ": matmul accumulates " + hw::to_string(c.type) +
                                     " products into the int32 accumulators of an int8 matmul")
                                        .c_str());
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
    int_acc_ = false;
    auto job = [this, acc = acc_.data(), a = a_rows_.data(), b = b_rows_.data(), m = c.m, n = c.n, k = c.k, clear] {
        if (clear) std::fill(acc, acc + size_t(m) * n, 0.0f);
        gemm_(acc, n, a, b, m, n, k);
    };
    if (helper_)
        pending_ = helper_->submit(job);  // nothing the job reads or writes changes before run() waits for it
    else
        job();
    macs_ += uint64_t(c.m) * c.n * c.k;
    macs_by_type_[size_t(c.type)] += uint64_t(c.m) * c.n * c.k;
    l1_read_ += (uint64_t(c.m) * c.k + uint64_t(c.k) * c.n) * size;
    return true;
}

bool SystolicFabric::execute_int8(const hw::MatmulCommand& c) {
    auto refuse = [&](const std::string& why) {
        SC_REPORT_WARNING(kMsgType, (std::string(name()) + ": int8 matmul refused: " + why).c_str());
        return false;
    };
    if (c.load_c) return refuse("load_c (its accumulators are int32, a C tile in L1 is not)");
    if (c.a_zero < -128 || c.a_zero > 127 || c.b_zero < -128 || c.b_zero > 127)
        return refuse("zero points a_zero " + std::to_string(c.a_zero) + ", b_zero " + std::to_string(c.b_zero) +
                      " outside [-128, 127]");
    auto unreadable = [&](const char* what, uint64_t addr, uint64_t bytes) {
        std::ostringstream msg;
        msg << "cannot read operand " << what << " at 0x" << std::hex << addr << std::dec << " (" << bytes
            << " bytes) from L1";
        return refuse(msg.str());
    };
    if (!offset_rows(c.a, c.m, c.k, c.lda, c.a_zero, a_int_)) return unreadable("A", c.a, uint64_t(c.m) * c.lda);
    if (!offset_rows(c.b, c.k, c.n, c.ldb, c.b_zero, b_int_)) return unreadable("B", c.b, uint64_t(c.k) * c.ldb);
    bool clear = !c.accumulate;
    if (c.accumulate && (!int_acc_ || acc_rows_ != c.m || acc_cols_ != c.n))
        return refuse("accumulate into a " + std::to_string(c.m) + "x" + std::to_string(c.n) +
                      " int32 tile but the accumulators hold a " + std::to_string(acc_rows_) + "x" +
                      std::to_string(acc_cols_) + (int_acc_ ? " int32" : " float32") + " tile");
    acc_rows_ = c.m;
    acc_cols_ = c.n;
    acc_int_.resize(size_t(c.m) * c.n);
    int_acc_ = true;
    // acc += (a - a_zero)(b - b_zero) in int32, wrapping as the hardware's adders do; integer
    // sums are exact, so the order is free (i-p-j: the compiler vectorizes the inner loop).
    auto job = [acc = acc_int_.data(), a = a_int_.data(), b = b_int_.data(), m = c.m, n = c.n, k = c.k, clear] {
        if (clear) std::fill(acc, acc + size_t(m) * n, 0);
        for (uint32_t i = 0; i < m; ++i) {
            int32_t* row = acc + size_t(i) * n;
            for (uint32_t p = 0; p < k; ++p) {
                const uint32_t x = uint32_t(a[size_t(i) * k + p]);
                const int32_t* brow = b + size_t(p) * n;
                for (uint32_t j = 0; j < n; ++j) row[j] = int32_t(uint32_t(row[j]) + x * uint32_t(brow[j]));
            }
        }
    };
    if (helper_)
        pending_ = helper_->submit(job);
    else
        job();
    macs_ += uint64_t(c.m) * c.n * c.k;
    macs_by_type_[size_t(hw::DType::Int8)] += uint64_t(c.m) * c.n * c.k;
    l1_read_ += uint64_t(c.m) * c.k + uint64_t(c.k) * c.n;
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
    if (c.out_type != hw::DType::Float32 && c.out_type != hw::DType::BFloat16 && c.out_type != hw::DType::Float16 &&
        c.out_type != hw::DType::Int8)
        return refuse(std::string("out_type ") + hw::to_string(c.out_type) +
                      " (C is float32, bfloat16, float16 or int8)");
    if (c.out_type == hw::DType::Int8 && (c.out_zero < -128 || c.out_zero > 127))
        return refuse("out_zero " + std::to_string(c.out_zero) + " outside [-128, 127]");
    if (int_acc_ && (c.alpha != 1.0f || c.beta != 1.0f)) {
        std::ostringstream why;
        why << "alpha " << c.alpha << " and beta " << c.beta << " must be 1 after int8 matmuls (int32 accumulators)";
        return refuse(why.str());
    }
    // The bias: float32, or int32 added to the int32 accumulators after int8 matmuls.
    std::vector<float> bias(c.has_bias && !int_acc_ ? c.n : 0);
    std::vector<int32_t> bias_int(c.has_bias && int_acc_ ? c.n : 0);
    if (c.has_bias && !(int_acc_ ? l1_.read(c.bias, bias_int.data(), uint64_t(c.n) * sizeof(int32_t))
                                 : l1_.read(c.bias, bias.data(), uint64_t(c.n) * sizeof(float))))
        return refuse("cannot read the bias from L1");
    if (c.has_bias) l1_read_ += uint64_t(c.n) * sizeof(float);
    std::vector<float> scale(c.has_scale ? c.n : 0);
    if (c.has_scale && !l1_.read(c.scale, scale.data(), uint64_t(c.n) * sizeof(float)))
        return refuse("cannot read the scale from L1");
    if (c.has_scale) l1_read_ += uint64_t(c.n) * sizeof(float);
    if (c.has_residual && c.ldr < c.n) return refuse("ldr " + std::to_string(c.ldr) + " < n " + std::to_string(c.n));
    std::vector<float> residual(c.has_residual ? c.n : 0);
    l1_written_ += uint64_t(c.m) * c.n * hw::dtype_bytes(c.out_type);
    out_.resize(c.n);
    for (uint32_t i = 0; i < c.m; ++i) {
        const float* row = acc_.data() + size_t(i) * c.n;
        const int32_t* row_int = acc_int_.data() + size_t(i) * c.n;
        if (c.has_residual) {
            const uint64_t at = c.residual + uint64_t(i) * c.ldr * sizeof(float);
            if (!l1_.read(at, residual.data(), uint64_t(c.n) * sizeof(float)))
                return refuse("cannot read residual row " + std::to_string(i) + " from L1");
            l1_read_ += uint64_t(c.n) * sizeof(float);
        }
        for (uint32_t j = 0; j < c.n; ++j) {
            float v;
            if (int_acc_) {  // the int32 sum (wrapping as the adders do), then one rounding to float32
                v = float(int32_t(uint32_t(row_int[j]) + uint32_t(c.has_bias ? bias_int[j] : 0)));
            } else {
                const float sum = c.alpha == 1.0f ? row[j] : c.alpha * row[j];
                v = sum + (!c.has_bias ? 0.0f : c.beta == 1.0f ? bias[j] : c.beta * bias[j]);
            }
            if (c.has_scale) v = v * scale[j];
            if (c.has_residual) v = v + residual[j];
            out_[j] = hw::activate(v, c.activation);
        }
        if (!store_row(c, i)) {
            const uint64_t at = c.c + uint64_t(i) * c.ldc * hw::dtype_bytes(c.out_type);
            std::ostringstream where;
            where << "cannot write row " << i << " at 0x" << std::hex << at << " to L1";
            return refuse(where.str());
        }
    }
    return true;
}

bool SystolicFabric::store_row(const hw::DrainCommand& c, uint32_t i) {
    const uint64_t size = hw::dtype_bytes(c.out_type), at = c.c + uint64_t(i) * c.ldc * size;
    if (c.out_type == hw::DType::Float32) return l1_.write(at, out_.data(), uint64_t(c.n) * sizeof(float));
    if (raw_.size() < c.n * size) raw_.resize(c.n * size);
    if (c.out_type == hw::DType::Int8) {
        // saturate(round_half_even(t) + out_zero) to [-128, 127]: the zero point shifts the bounds.
        for (uint32_t j = 0; j < c.n; ++j)
            raw_[j] = uint8_t(int8_t(hw::round_saturate(out_[j], -128 - c.out_zero, 127 - c.out_zero) + c.out_zero));
    } else {
        const hw::Encoding encoding{c.out_type};
        for (uint32_t j = 0; j < c.n; ++j) hw::store_element(raw_.data() + j * size, out_[j], encoding);
    }
    return l1_.write(at, raw_.data(), uint64_t(c.n) * size);
}

}  // namespace kpu::model
