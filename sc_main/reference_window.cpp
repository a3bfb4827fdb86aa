#include "sc_main/reference_window.h"

#include <algorithm>
#include <cmath>

namespace kpu::cli {

namespace {

const double kU = std::ldexp(1.0, -24);  ///< u: fp32's unit roundoff

/// The output tensor, zeroed, and its shape [N, C, OH, OW] (or the op's).
ReferenceTensor& zeroed_output(OpEvaluation& e) {
    ReferenceTensor& t = e.outputs.at(0);
    uint64_t n = 1;
    for (uint64_t d : e.output_shapes.at(0)) n *= d;
    t.value.assign(n, 0.0);
    t.bound.assign(n, 0.0);
    t.sums = false;
    return t;
}

/// A 2-D window read from the attributes as ONNX defines them (pads [top, left, bottom,
/// right] resolved from auto_pad; the output size is the graph's).
struct Window {
    int64_t kernel[2] = {1, 1}, stride[2] = {1, 1}, dilation[2] = {1, 1}, pad[4] = {0, 0, 0, 0};
};

Window window_attributes(const OpEvaluation& e, const std::vector<uint64_t>& x) {
    Window w;
    std::vector<int64_t> kernel;
    if (e.op.kind == "depthwise_conv") kernel = {int64_t(e.inputs.at(1).shape[2]), int64_t(e.inputs.at(1).shape[3])};
    else kernel = e.ints_attr("kernel_shape");
    const auto list = [&](const char* name, int64_t* out, size_t count) {
        if (!e.has_attr(name)) return;
        const std::vector<int64_t> v = e.ints_attr(name);
        for (size_t i = 0; i < count && i < v.size(); ++i) out[i] = v[i];
    };
    w.kernel[0] = kernel[0], w.kernel[1] = kernel[1];
    list("strides", w.stride, 2);
    list("dilations", w.dilation, 2);
    const std::string auto_pad = e.string_attr("auto_pad");
    if (auto_pad == "NOTSET") list("pads", w.pad, 4);
    if (auto_pad == "SAME_UPPER" || auto_pad == "SAME_LOWER")
        for (int d = 0; d < 2; ++d) {
            const int64_t in = int64_t(x[2 + d]), out = (in + w.stride[d] - 1) / w.stride[d];
            const int64_t total = std::max<int64_t>(0, (out - 1) * w.stride[d] + (w.kernel[d] - 1) * w.dilation[d] + 1 - in);
            w.pad[d] = auto_pad == "SAME_UPPER" ? total / 2 : total - total / 2;
            w.pad[d + 2] = total - w.pad[d];
        }
    return w;
}

enum class Pool { Max, Average, Weighted };

/// Max, average or depthwise weighted sum over each window (plain loops over N, C, OH, OW,
/// and the kernel's taps).
void pool(OpEvaluation& e, Pool kind) {
    const RefOperand& x = e.inputs.at(0);
    const std::vector<uint64_t>& s = x.shape;
    const std::vector<uint64_t>& o = e.output_shapes.at(0);
    const Window w = window_attributes(e, s);
    const bool include_pad = kind == Pool::Average && e.int_attr("count_include_pad") != 0;
    const RefOperand* weight = kind == Pool::Weighted ? &e.inputs.at(1) : nullptr;
    const RefOperand* bias = kind == Pool::Weighted && e.has_input(2) ? &e.inputs.at(2) : nullptr;
    ReferenceTensor& y = zeroed_output(e);
    y.sums = kind != Pool::Max;
    const int64_t H = int64_t(s[2]), W = int64_t(s[3]), kh = w.kernel[0], kw = w.kernel[1];
    uint64_t at = 0;
    for (uint64_t n = 0; n < o[0]; ++n)
        for (uint64_t c = 0; c < o[1]; ++c)
            for (int64_t oh = 0; oh < int64_t(o[2]); ++oh)
                for (int64_t ow = 0; ow < int64_t(o[3]); ++ow, ++at) {
                    double value = kind == Pool::Max ? -INFINITY : 0, carried = 0, magnitude = 0, padded_mag = 0;
                    int64_t inside = 0, padded = 0;
                    for (int64_t i = 0; i < kh; ++i)
                        for (int64_t j = 0; j < kw; ++j) {
                            const int64_t h = oh * w.stride[0] - w.pad[0] + i * w.dilation[0];
                            const int64_t v = ow * w.stride[1] - w.pad[1] + j * w.dilation[1];
                            if (h >= -w.pad[0] && h < H + w.pad[2] && v >= -w.pad[1] && v < W + w.pad[3]) ++padded;
                            if (h < 0 || h >= H || v < 0 || v >= W) continue;
                            ++inside;
                            const uint64_t xi = ((n * s[1] + c) * s[2] + uint64_t(h)) * s[3] + uint64_t(v);
                            const double xv = x.value[xi], ex = x.bound[xi];
                            if (kind == Pool::Max) {
                                value = std::max(value, xv), carried = std::max(carried, ex);
                            } else if (kind == Pool::Average) {
                                value += xv, carried += ex, magnitude += std::fabs(xv);
                            } else {
                                const uint64_t wi = (c * uint64_t(kh) + uint64_t(i)) * uint64_t(kw) + uint64_t(j);
                                const double wv = weight->value[wi], ew = weight->bound[wi];
                                value += xv * wv;
                                magnitude += std::fabs(xv * wv);
                                padded_mag += (std::fabs(xv) + ex) * (std::fabs(wv) + ew);
                            }
                        }
                    if (kind == Pool::Average) {
                        const double count = double(include_pad ? padded : inside);
                        value /= count;
                        carried = carried / count + 2 * double(inside) * kU * magnitude / count + 2 * kU * std::fabs(value);
                    } else if (kind == Pool::Weighted) {
                        uint64_t k = uint64_t(kh * kw);
                        if (bias) {
                            value += bias->value[c];
                            magnitude += std::fabs(bias->value[c]);
                            padded_mag += std::fabs(bias->value[c]) + bias->bound[c];
                            ++k;
                        }
                        // As a dot product of k terms (reference.h's GEMM bound), then one rounding.
                        carried = 2 * double(k) * kU * padded_mag + (padded_mag - magnitude) + 2 * kU * std::fabs(value);
                        if (magnitude > 0) y.bound_in_products = std::max(y.bound_in_products, carried * double(k) / magnitude);
                    }
                    y.value[at] = value;
                    y.bound[at] = carried;
                }
}

}  // namespace

void ref_max_pool(OpEvaluation& e) { pool(e, Pool::Max); }
void ref_average_pool(OpEvaluation& e) { pool(e, Pool::Average); }
void ref_depthwise_conv(OpEvaluation& e) { pool(e, Pool::Weighted); }

void ref_global_average_pool(OpEvaluation& e) {
    const RefOperand& x = e.inputs.at(0);
    ReferenceTensor& y = zeroed_output(e);
    y.sums = true;
    const uint64_t planes = y.value.size(), n = x.value.size() / planes;
    for (uint64_t p = 0; p < planes; ++p) {
        double sum = 0, carried = 0, magnitude = 0;
        for (uint64_t i = p * n; i < (p + 1) * n; ++i) sum += x.value[i], carried += x.bound[i], magnitude += std::fabs(x.value[i]);
        y.value[p] = sum / double(n);
        y.bound[p] = (carried + 2 * double(n) * kU * magnitude) / double(n) + 2 * kU * std::fabs(y.value[p]);
    }
}

void ref_batch_normalization(OpEvaluation& e) {
    const RefOperand& x = e.inputs.at(0);
    const RefOperand &scale = e.inputs.at(1), &b = e.inputs.at(2), &mean = e.inputs.at(3), &var = e.inputs.at(4);
    const double epsilon = e.float_attr("epsilon");
    ReferenceTensor& y = zeroed_output(e);
    const std::vector<uint64_t>& shape = x.shape;
    const uint64_t channels = shape[1];
    uint64_t inner = 1;
    for (size_t d = 2; d < shape.size(); ++d) inner *= shape[d];
    for (uint64_t i = 0; i < x.value.size(); ++i) {
        const uint64_t c = i / inner % channels;
        const double s = scale.value[c] / std::sqrt(var.value[c] + epsilon);
        const double t = b.value[c] - mean.value[c] * s;
        const double v = (x.value[i] - mean.value[c]) * s + b.value[c];
        // s = scale / sqrt(var + eps) in fp32 (add, sqrt, divide: 4 u relative), t = B - mean s
        // (the product and the difference one rounding each), y = x s + t (two roundings).
        const double own = 5 * kU * (std::fabs(x.value[i] * s) + std::fabs(mean.value[c] * s)) + kU * std::fabs(t) +
                           kU * std::fabs(v);
        const double relative_s = (scale.value[c] != 0 ? scale.bound[c] / std::fabs(scale.value[c]) : 0) +
                                  var.bound[c] / (2 * (var.value[c] + epsilon));
        const double carried = std::fabs(s) * (x.bound[i] + mean.bound[c]) + b.bound[c] +
                               std::fabs((x.value[i] - mean.value[c]) * s) * relative_s;
        y.value[i] = v;
        y.bound[i] = own + carried;
    }
}

void ref_resize(OpEvaluation& e) {
    const RefOperand& x = e.inputs.at(0);
    const std::vector<uint64_t>& in = x.shape;
    const std::vector<uint64_t>& out = e.output_shapes.at(0);
    const size_t rank = in.size();
    std::vector<double> scales(rank);
    for (size_t d = 0; d < rank; ++d)
        scales[d] = e.has_input(2) ? e.inputs[2].value[d] : double(out[d]) / double(in[d]);
    const std::string transform = e.string_attr("coordinate_transformation_mode");
    const std::string nearest = e.string_attr("nearest_mode");
    // ONNX's nearest resize: per axis, the source index of output index i.
    const auto source = [&](size_t d, uint64_t i) {
        const double s = scales[d], o = double(out[d]), n = double(in[d]);
        double v = double(i) / s;  // asymmetric
        if (transform == "half_pixel") v = (double(i) + 0.5) / s - 0.5;
        if (transform == "pytorch_half_pixel") v = o > 1 ? (double(i) + 0.5) / s - 0.5 : 0;
        if (transform == "align_corners") v = o == 1 ? 0 : double(i) * (n - 1) / (o - 1);
        if (transform == "tf_half_pixel_for_nn") v = (double(i) + 0.5) / s;
        const double f = std::floor(v), frac = v - f;
        double r = f;
        if (nearest == "ceil") r = std::ceil(v);
        if (nearest == "round_prefer_floor") r = frac > 0.5 ? f + 1 : f;
        if (nearest == "round_prefer_ceil") r = frac >= 0.5 ? f + 1 : f;
        return uint64_t(std::min(std::max(r, 0.0), n - 1));
    };
    ReferenceTensor& y = zeroed_output(e);
    std::vector<uint64_t> index(rank, 0);
    for (uint64_t at = 0; at < y.value.size(); ++at) {
        uint64_t from = 0;
        for (size_t d = 0; d < rank; ++d) from = from * in[d] + source(d, index[d]);
        y.value[at] = x.value[from];
        y.bound[at] = x.bound[from];
        for (size_t d = rank; d-- > 0;) {
            if (++index[d] < out[d]) break;
            index[d] = 0;
        }
    }
}

}  // namespace kpu::cli
