#include "models/vector_engine.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <sstream>

#include "hardware/scalar_functions.h"
#include "hardware/vector_timing.h"

namespace kpu::model {

namespace {

const char* kMsgType = "kpu/vector";

/// An input staged in its compact form: element (r, c) is data[r * row_step + c * col_step].
struct View {
    const float* data = nullptr;
    size_t row_step = 0, col_step = 0;
    const float* row(uint32_t r) const { return data + r * row_step; }
};

View view_of(const std::vector<float>& staged, hw::Broadcast broadcast, uint32_t cols) {
    switch (broadcast) {
        case hw::Broadcast::None: return {staged.data(), cols, 1};
        case hw::Broadcast::Row: return {staged.data(), 0, 1};
        case hw::Broadcast::Column: return {staged.data(), 1, 0};
        case hw::Broadcast::Scalar: break;
    }
    return {staged.data(), 0, 0};
}

template <class F>
void unary(const View& a, uint32_t rows, uint32_t cols, float* y, F f) {
    for (uint32_t r = 0; r < rows; ++r) {
        const float* in = a.row(r);
        float* out = y + size_t(r) * cols;
        for (uint32_t c = 0; c < cols; ++c) out[c] = f(in[c * a.col_step]);
    }
}

template <class F>
void binary(const View& a, const View& b, uint32_t rows, uint32_t cols, float* y, F f) {
    for (uint32_t r = 0; r < rows; ++r) {
        const float *in_a = a.row(r), *in_b = b.row(r);
        float* out = y + size_t(r) * cols;
        for (uint32_t c = 0; c < cols; ++c) out[c] = f(in_a[c * a.col_step], in_b[c * b.col_step]);
    }
}

/// Folds a row as the lanes do: lane j accumulates elements j, j + lanes, j + 2 lanes, ...
/// in order, then a pairwise tree joins the lanes (lane i with lane i + half, halving).
/// Deterministic, and its rounding error grows with cols / lanes + log2 lanes, not cols.
template <class Op>
float lane_fold(const float* row, uint32_t cols, uint32_t lanes, float identity, Op op, std::vector<float>& acc) {
    const uint32_t used = std::min(lanes, cols);
    acc.assign(used, identity);
    for (uint32_t base = 0; base < cols; base += lanes)
        for (uint32_t j = 0; j < used && base + j < cols; ++j) acc[j] = op(acc[j], row[base + j]);
    for (uint32_t n = used; n > 1;) {
        const uint32_t half = (n + 1) / 2;
        for (uint32_t i = 0; i + half < n; ++i) acc[i] = op(acc[i], acc[i + half]);
        n = half;
    }
    return acc[0];
}

float add(float x, float y) { return x + y; }
/// max and min propagate NaN (numpy's maximum and minimum, ONNX Max and Min).
float max_nan(float x, float y) { return std::isnan(x) || x > y ? x : y; }
float min_nan(float x, float y) { return std::isnan(x) || x < y ? x : y; }

using hw::gelu_erf;
using hw::gelu_tanh;
using hw::sigmoid;

/// Softmax of each row of x = scale a (+ b), causally masked if asked.
void softmax(const hw::VectorCommand& c, uint32_t lanes, const View& a, const View* b, float* y) {
    std::vector<float> acc;
    const float kMasked = -std::numeric_limits<float>::infinity();
    for (uint32_t r = 0; r < c.rows; ++r) {
        float* out = y + size_t(r) * c.cols;
        const float* in = a.row(r);
        const float* mask = b ? b->row(r) : nullptr;
        for (uint32_t col = 0; col < c.cols; ++col) {
            const bool masked = c.causal && int64_t(col) > int64_t(r) + c.causal_offset;
            out[col] = masked ? kMasked : c.scale * in[col] + (mask ? mask[col * b->col_step] : 0.0f);
        }
        const float max = lane_fold(out, c.cols, lanes, kMasked, max_nan, acc);
        if (max == kMasked) {  // every element masked
            std::fill(out, out + c.cols, 0.0f);
            continue;
        }
        for (uint32_t col = 0; col < c.cols; ++col) out[col] = std::exp(out[col] - max);
        const float inverse = 1.0f / lane_fold(out, c.cols, lanes, 0.0f, add, acc);
        for (uint32_t col = 0; col < c.cols; ++col) out[col] *= inverse;
    }
}

/// Flash attention's online softmax step, the rescaled accumulation and the final division,
/// row by row against the statistics `state` (m, l, c: rows values each, updated in place by
/// OnlineSoftmax). A row whose scores are all masked so far keeps m = -inf, l = 0 and gets
/// P = 0 and c = 1; OnlineFinish gives zeros where l is 0 (what softmax gives such a row).
void online(const hw::VectorCommand& c, uint32_t lanes, const View& a, const View* b, float* state, float* y) {
    using F = hw::VectorFunction;
    std::vector<float> acc;
    const float kMasked = -std::numeric_limits<float>::infinity();
    float *m = state, *l = state + c.rows, *corr = state + 2 * size_t(c.rows);
    for (uint32_t r = 0; r < c.rows; ++r) {
        float* out = y + size_t(r) * c.cols;
        const float* in = a.row(r);
        if (c.function == F::OnlineAccumulate) {
            for (uint32_t col = 0; col < c.cols; ++col) out[col] = c.online_first ? in[col] : corr[r] * out[col] + in[col];
            continue;
        }
        if (c.function == F::OnlineFinish) {
            const float inverse = l[r] > 0 ? 1.0f / l[r] : 0.0f;
            for (uint32_t col = 0; col < c.cols; ++col) out[col] = in[col] * inverse;
            continue;
        }
        const float* mask = b ? b->row(r) : nullptr;
        for (uint32_t col = 0; col < c.cols; ++col) {
            const bool masked = c.causal && int64_t(col) > int64_t(r) + c.causal_offset;
            out[col] = masked ? kMasked : c.scale * in[col] + (mask ? mask[col * b->col_step] : 0.0f);
        }
        const float top = max_nan(m[r], lane_fold(out, c.cols, lanes, kMasked, max_nan, acc));
        if (top == kMasked) {  // every score so far masked
            std::fill(out, out + c.cols, 0.0f);
            corr[r] = 1.0f;
            continue;
        }
        corr[r] = std::exp(m[r] - top);  // 0 for the first unmasked block (m = -inf)
        for (uint32_t col = 0; col < c.cols; ++col) out[col] = std::exp(out[col] - top);
        l[r] = corr[r] * l[r] + lane_fold(out, c.cols, lanes, 0.0f, add, acc);
        m[r] = top;
    }
}

/// LayerNorm (two-pass variance) and RmsNorm of each row, then weight and bias per column.
void normalize(const hw::VectorCommand& c, uint32_t lanes, const View& a, const float* weight, const float* bias,
               float* y) {
    std::vector<float> acc;
    const float inverse_cols = 1.0f / float(c.cols);
    const bool layer = c.function == hw::VectorFunction::LayerNorm;
    for (uint32_t r = 0; r < c.rows; ++r) {
        const float* in = a.row(r);
        float* out = y + size_t(r) * c.cols;
        const float mean = layer ? lane_fold(in, c.cols, lanes, 0.0f, add, acc) * inverse_cols : 0.0f;
        for (uint32_t col = 0; col < c.cols; ++col) out[col] = (in[col] - mean) * (in[col] - mean);
        const float variance = lane_fold(out, c.cols, lanes, 0.0f, add, acc) * inverse_cols;
        const float rstd = 1.0f / std::sqrt(variance + c.epsilon);
        for (uint32_t col = 0; col < c.cols; ++col) {
            float v = (in[col] - mean) * rstd;
            if (weight) v *= weight[col];
            if (bias) v += bias[col];
            out[col] = v;
        }
    }
}

/// The window functions over each row's plane (hw::VectorWindow): max and average over the
/// taps inside the plane, the depthwise multiply-add (padding reads 0, the accumulator starts
/// at the channel's bias), the nearest upsampling. Taps are visited row by row of the kernel.
void window(const hw::VectorCommand& c, const View& a, const float* weight, const float* bias, float* y) {
    using F = hw::VectorFunction;
    const hw::VectorWindow& w = c.window;
    const int64_t in_h = w.in_h, in_w = w.in_w;
    const uint64_t plane = uint64_t(w.out_h) * w.out_w;
    for (uint32_t r = 0; r < c.rows; ++r) {
        const float* in = a.row(r);
        float* out = y + r * plane;
        const uint64_t channel = (uint64_t(w.first_plane) + r) % w.channels;
        const float* kernel = weight ? weight + channel * w.kernel_h * w.kernel_w : nullptr;
        for (uint32_t oh = 0; oh < w.out_h; ++oh)
            for (uint32_t ow = 0; ow < w.out_w; ++ow) {
                float& result = out[uint64_t(oh) * w.out_w + ow];
                if (c.function == F::ResizeNearest) {
                    result = in[uint64_t(oh / w.scale_h) * w.in_w + ow / w.scale_w];
                    continue;
                }
                const int64_t h0 = int64_t(oh) * w.stride_h - w.pad_top, w0 = int64_t(ow) * w.stride_w - w.pad_left;
                float acc = c.function == F::MaxPool ? -std::numeric_limits<float>::infinity()
                                                     : (bias ? bias[channel] : 0.0f);
                uint32_t inside = 0, padded = 0;
                for (uint32_t i = 0; i < w.kernel_h; ++i) {
                    const int64_t h = h0 + int64_t(i) * w.dilation_h;
                    for (uint32_t j = 0; j < w.kernel_w; ++j) {
                        const int64_t x = w0 + int64_t(j) * w.dilation_w;
                        padded += h < in_h + w.pad_bottom && x < in_w + w.pad_right;
                        if (h < 0 || h >= in_h || x < 0 || x >= in_w) continue;
                        const float v = in[h * in_w + x];
                        ++inside;
                        if (c.function == F::MaxPool) acc = max_nan(acc, v);
                        else if (c.function == F::AveragePool) acc += v;
                        else acc += v * kernel[i * w.kernel_w + j];
                    }
                }
                if (c.function == F::AveragePool) acc *= 1.0f / float(w.count_include_pad ? padded : inside);
                result = acc;
            }
    }
}

/// y = c.function(a [, b]): rows x cols values, or rows for a reduction.
void compute(const hw::VectorCommand& c, uint32_t lanes, const View& a, const View& b, const float* weight,
             const float* bias, float* state, float* y) {
    using F = hw::VectorFunction;
    const uint32_t rows = c.rows, cols = c.cols;
    auto one = [&](auto f) { unary(a, rows, cols, y, f); };
    auto two = [&](auto f) { binary(a, b, rows, cols, y, f); };
    switch (c.function) {
        case F::Copy: return one([](float x) { return x; });
        case F::Relu: return one(hw::relu);
        case F::LeakyRelu: return one([alpha = c.alpha](float x) { return x < 0 ? alpha * x : x; });
        case F::Gelu: return one(gelu_erf);
        case F::GeluTanh: return one(gelu_tanh);
        case F::Sigmoid: return one(sigmoid);
        case F::Silu: return one(hw::silu);
        case F::Tanh: return one([](float x) { return std::tanh(x); });
        case F::Exp: return one([](float x) { return std::exp(x); });
        case F::Erf: return one([](float x) { return std::erf(x); });
        case F::Sqrt: return one([](float x) { return std::sqrt(x); });
        case F::Reciprocal: return one([](float x) { return 1.0f / x; });
        case F::Neg: return one([](float x) { return -x; });
        case F::Abs: return one([](float x) { return std::fabs(x); });
        case F::Clip:
            return one([lo = c.clip_min, hi = c.clip_max](float x) { return x < lo ? lo : (x > hi ? hi : x); });
        case F::HardSigmoid:
            return one([alpha = c.alpha, beta = c.beta](float x) {
                return std::min(1.0f, std::max(0.0f, alpha * x + beta));
            });
        case F::HardSwish:
            return one([](float x) { return x * std::min(1.0f, std::max(0.0f, x / 6.0f + 0.5f)); });
        case F::Add: return two(add);
        case F::Sub: return two([](float x, float z) { return x - z; });
        case F::Mul: return two([](float x, float z) { return x * z; });
        case F::Div: return two([](float x, float z) { return x / z; });
        case F::Max: return two(max_nan);
        case F::Min: return two(min_nan);
        case F::Pow: return two([](float x, float z) { return std::pow(x, z); });
        case F::ReduceSum:
        case F::ReduceMean:
        case F::ReduceMax: {
            std::vector<float> acc;
            const bool max = c.function == F::ReduceMax;
            const float inverse_cols = c.function == F::ReduceMean ? 1.0f / float(cols) : 1.0f;
            for (uint32_t r = 0; r < rows; ++r)
                y[r] = max ? lane_fold(a.row(r), cols, lanes, -std::numeric_limits<float>::infinity(), max_nan, acc)
                           : lane_fold(a.row(r), cols, lanes, 0.0f, add, acc) * inverse_cols;
            return;
        }
        case F::Softmax: return softmax(c, lanes, a, c.has_b ? &b : nullptr, y);
        case F::LayerNorm:
        case F::RmsNorm: return normalize(c, lanes, a, weight, bias, y);
        case F::MaxPool:
        case F::AveragePool:
        case F::DepthwiseConv:
        case F::ResizeNearest: return window(c, a, weight, bias, y);
        case F::OnlineSoftmax:
        case F::OnlineAccumulate:
        case F::OnlineFinish: return online(c, lanes, a, c.has_b ? &b : nullptr, state, y);
    }
}

}  // namespace

VectorEngine::VectorEngine(sc_core::sc_module_name name, const hw::Config& config)
    : sc_core::sc_module(name),
      socket("socket"),
      unit_(config.vector),
      max_tile_bytes_(uint64_t(config.l1.count) * config.l1.capacity_bytes +
                      uint64_t(config.l2.count) * config.l2.capacity_bytes),
      period_s_(1.0 / config.clocks.fabric_hz),
      cycle_(sc_core::sc_time(period_s_, sc_core::SC_SEC)),
      memory_(socket) {
    socket.register_invalidate_direct_mem_ptr(this, &VectorEngine::invalidate_direct_mem_ptr);
    SC_HAS_PROCESS(VectorEngine);
    SC_METHOD(step);
    sensitive << queued_;
    dont_initialize();
}

void VectorEngine::submit(const Command& command) {
    queue_.push_back(command);
    queued_.notify(sc_core::SC_ZERO_TIME);  // ignored while a command runs: step() then waits for its end
}

void VectorEngine::invalidate_direct_mem_ptr(sc_dt::uint64 start, sc_dt::uint64 end) {
    memory_.invalidate(start, end);
}

void VectorEngine::step() {
    if (!running_) {
        if (!queue_.empty()) begin_next();
        return;
    }
    // The running command's time is up.
    running_ = false;
    const bool ok = finish(current_.vector);
    busy_ += duration_;
    ++commands_;
    const uint64_t id = current_.id;
    const sc_core::sc_time started = started_;
    if (!queue_.empty()) begin_next();  // before the callback, which may submit
    if (completion_) completion_(id, ok, started);
}

void VectorEngine::begin_next() {
    current_ = queue_.front();
    queue_.pop_front();
    started_ = sc_core::sc_time_stamp();
    // Duration from the cycle count in one step, so long programs do not accumulate the
    // rounding of a per-cycle sc_time.
    duration_ = sc_core::sc_time(double(hw::vector_cycles(current_.vector, unit_)) * period_s_, sc_core::SC_SEC);
    // The inputs are read when the command starts; its dependencies guarantee they stay
    // until it completes, and that nothing reads its results before.
    ok_ = start(current_.vector);
    running_ = true;
    next_trigger(duration_);
}

bool VectorEngine::refuse(const hw::VectorCommand& c, const std::string& why) {
    const std::string function = hw::to_string(c.function);
    const std::string what = function == "?" ? "command" : function;
    SC_REPORT_WARNING(kMsgType, (std::string(name()) + ": " + what + " refused: " + why).c_str());
    return false;
}

bool VectorEngine::read_vector(const char* what, uint64_t addr, uint64_t count, std::vector<float>& out,
                               const hw::Encoding& encoding) {
    out.resize(count);
    const uint64_t size = hw::dtype_bytes(encoding.type), bytes = uint64_t(count) * size;
    bool read;
    if (encoding.type == hw::DType::Float32) {
        read = memory_.read(addr, out.data(), bytes);
    } else {  // as stored, then each element into float32 through its encoding
        raw_.resize(bytes);
        read = memory_.read(addr, raw_.data(), bytes);
        for (uint64_t i = 0; read && i < count; ++i) out[i] = hw::load_element(raw_.data() + i * size, encoding);
    }
    if (read) {
        bytes_read_ += bytes;
        return true;
    }
    std::ostringstream msg;
    msg << name() << ": cannot read " << what << " at 0x" << std::hex << addr << std::dec << " (" << bytes
        << " bytes)";
    SC_REPORT_WARNING(kMsgType, msg.str().c_str());
    return false;
}

bool VectorEngine::read_input(const char* what, const hw::VectorOperand& in, uint32_t rows, uint32_t cols,
                              std::vector<float>& out) {
    const hw::Encoding& e = in.encoding;
    switch (in.broadcast) {
        case hw::Broadcast::Scalar: return read_vector(what, in.addr, 1, out, e);
        case hw::Broadcast::Row: return read_vector(what, in.addr, cols, out, e);
        case hw::Broadcast::Column:
            if (in.ld == 1) return read_vector(what, in.addr, rows, out, e);
            break;
        case hw::Broadcast::None:
            if (in.ld == cols) return read_vector(what, in.addr, uint64_t(rows) * cols, out, e);
            break;
    }
    // Strided: one row (or one value of a column) at a time.
    const uint32_t per_row = in.broadcast == hw::Broadcast::Column ? 1 : cols;
    std::vector<float> row;
    out.resize(size_t(rows) * per_row);
    for (uint32_t r = 0; r < rows; ++r) {
        if (!read_vector(what, in.addr + uint64_t(r) * in.ld * hw::dtype_bytes(e.type), per_row, row, e)) return false;
        std::copy(row.begin(), row.end(), out.begin() + size_t(r) * per_row);
    }
    return true;
}

bool VectorEngine::start(const hw::VectorCommand& c) {
    if (const std::string why = hw::vector_command_problem(c); !why.empty()) return refuse(c, why);
    if (!hw::vector_element_type(unit_, c.a.encoding.type))
        return refuse(c, std::string("input a's element type ") + hw::to_string(c.a.encoding.type) +
                             " is not one of the vector engine's (config vector.element_types)");
    // The tile as its widest operand stores it (a and y: the ones of the tile's shape).
    const uint64_t element_bytes = std::max(hw::dtype_bytes(c.a.encoding.type), hw::dtype_bytes(c.y.encoding.type));
    const uint64_t tile_bytes = uint64_t(c.rows) * c.cols * element_bytes;
    if (tile_bytes > max_tile_bytes_)
        return refuse(c, "a " + std::to_string(c.rows) + " x " + std::to_string(c.cols) + " tile (" +
                             std::to_string(tile_bytes) + " bytes) is larger than a tile's L1 and L2 (" +
                             std::to_string(max_tile_bytes_) + " bytes)");
    if (!read_input("input a", c.a, c.rows, c.cols, a_)) return false;
    if (c.has_b && !read_input("input b", c.b, c.rows, c.cols, b_)) return false;
    if (c.has_weight && !read_vector("weight", c.weight, hw::weight_elements(c), weight_)) return false;
    if (c.has_bias && !read_vector("bias", c.bias, hw::bias_elements(c), bias_)) return false;
    y_.resize(size_t(c.rows) * hw::y_cols(c));
    if (hw::uses_state(c.function)) {
        const bool fresh = c.function == hw::VectorFunction::OnlineSoftmax && c.online_first;
        if (fresh) {
            state_.assign(3 * size_t(c.rows), 0.0f);
            std::fill(state_.begin(), state_.begin() + c.rows, -std::numeric_limits<float>::infinity());
        } else if (!read_vector("state", c.state, 3 * uint64_t(c.rows), state_)) {
            return false;
        }
        // The running sum it rescales: y is read as well as written.
        if (c.function == hw::VectorFunction::OnlineAccumulate && !c.online_first &&
            !read_input("output y", c.y, c.rows, c.cols, y_))
            return false;
    }
    auto job = [this, c, lanes = unit_.lanes] {
        compute(c, lanes, view_of(a_, c.a.broadcast, c.cols), view_of(b_, c.b.broadcast, c.cols),
                c.has_weight ? weight_.data() : nullptr, c.has_bias ? bias_.data() : nullptr, state_.data(), y_.data());
    };
    if (helper_)
        pending_ = helper_->submit(job);  // nothing the job reads or writes changes before finish() waits for it
    else
        job();
    elements_ += uint64_t(c.rows) * c.cols;
    const double energy = hw::vector_energy_pj(c, unit_);
    energy_pj_ += energy;
    TypeCounts& counts = by_type_[size_t(c.a.encoding.type)];
    counts.alu_ops += hw::vector_alu_ops(c, unit_);
    counts.elements += uint64_t(c.rows) * c.cols;
    counts.energy_pj += energy;
    return true;
}

bool VectorEngine::finish(const hw::VectorCommand& c) {
    if (pending_) helper_->wait(*pending_), pending_.reset();
    if (!ok_) return false;
    const uint64_t per_row = hw::y_cols(c);
    const hw::Encoding& encoding = c.y.encoding;
    const uint64_t size = hw::dtype_bytes(encoding.type);
    const uint64_t row_bytes = uint64_t(per_row) * size;
    const bool dense = c.y.ld == per_row;
    const void* y = y_.data();
    if (encoding.type != hw::DType::Float32) {  // each result through y's encoding
        raw_.resize(y_.size() * size);
        for (size_t i = 0; i < y_.size(); ++i) hw::store_element(raw_.data() + i * size, y_[i], encoding);
        y = raw_.data();
    }
    for (uint32_t r = 0; r < (dense ? 1u : c.rows); ++r) {
        const uint64_t at = c.y.addr + uint64_t(r) * c.y.ld * size;
        const uint64_t bytes = dense ? y_.size() * size : row_bytes;
        if (!memory_.write(at, static_cast<const uint8_t*>(y) + r * row_bytes, bytes)) {
            std::ostringstream msg;
            msg << name() << ": cannot write the result at 0x" << std::hex << at << std::dec << " (" << bytes
                << " bytes)";
            SC_REPORT_WARNING(kMsgType, msg.str().c_str());
            return false;
        }
        bytes_written_ += bytes;
    }
    if (c.function == hw::VectorFunction::OnlineSoftmax) {  // the updated statistics
        const uint64_t bytes = state_.size() * sizeof(float);
        if (!memory_.write(c.state, state_.data(), bytes)) {
            std::ostringstream msg;
            msg << name() << ": cannot write the state at 0x" << std::hex << c.state << std::dec << " (" << bytes
                << " bytes)";
            SC_REPORT_WARNING(kMsgType, msg.str().c_str());
            return false;
        }
        bytes_written_ += bytes;
    }
    return true;
}

}  // namespace kpu::model
