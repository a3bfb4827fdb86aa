// MaxPool (opset 12), AveragePool (opset 11), GlobalAveragePool, BatchNormalization (opset 15,
// inference), Resize (opset 13, nearest) and depthwise_conv, as ONNX defines them. 2-D only:
// X is NCHW. Output sizes (per spatial axis, e = (kernel - 1) dilation + 1 the dilated
// kernel, p the two pads): floor((in + p - e) / stride) + 1, or with ceil_mode the ceiling,
// less one when the last window would start past the input and its leading pad (PyTorch's
// rule, which later ONNX opsets adopted). auto_pad SAME_* gives ceil(in / stride).
#include "compiler/ops/window.h"

#include <algorithm>
#include <cmath>
#include <numeric>

#include "compiler/ops/expansion.h"
#include "compiler/ops/op_schema.h"
#include "compiler/ops/quantize.h"
#include "compiler/tiler.h"
#include "compiler/vector_op.h"

namespace kpu::compiler {

namespace {

std::string n(int64_t v) { return std::to_string(v); }

/// An ints attribute of `count` values (`fallback` each when absent), else `problem` set.
std::vector<int64_t> ints_or(const Op& op, const char* name, size_t count, int64_t fallback, std::string& problem) {
    const std::optional<AttrValue> value = attribute_of(op, schema_of(op), name);
    if (!value) return std::vector<int64_t>(count, fallback);
    const std::vector<int64_t>& v = std::get<std::vector<int64_t>>(*value);
    if (v.size() != count && problem.empty())
        problem = "attribute '" + std::string(name) + "' = " + attr_string(v) + " has " + n(int64_t(v.size())) +
                  " values, expected " + n(int64_t(count)) + " (2-D NCHW)";
    return v.size() == count ? v : std::vector<int64_t>(count, fallback);
}

std::string string_attr(const Op& op, const char* name) {
    const std::optional<AttrValue> value = attribute_of(op, schema_of(op), name);
    return value ? std::get<std::string>(*value) : "";
}

int64_t int_attr(const Op& op, const char* name) {
    const std::optional<AttrValue> value = attribute_of(op, schema_of(op), name);
    return value ? std::get<int64_t>(*value) : 0;
}

/// ONNX Resize's source coordinate of output index i along an axis (nearest mode).
int64_t resize_source(int64_t i, double scale, int64_t in, int64_t out, const std::string& transform,
                      const std::string& nearest) {
    double x = i / scale;
    if (transform == "half_pixel") x = (i + 0.5) / scale - 0.5;
    else if (transform == "pytorch_half_pixel") x = out > 1 ? (i + 0.5) / scale - 0.5 : 0;
    else if (transform == "align_corners") x = out == 1 ? 0 : double(i) * double(in - 1) / double(out - 1);
    else if (transform == "tf_half_pixel_for_nn") x = (i + 0.5) / scale;
    double r = std::floor(x);
    if (nearest == "ceil") r = std::ceil(x);
    else if (nearest == "round_prefer_floor") r = x - std::floor(x) == 0.5 ? std::floor(x) : std::round(x);
    else if (nearest == "round_prefer_ceil") r = x - std::floor(x) == 0.5 ? std::ceil(x) : std::round(x);
    return std::min<int64_t>(std::max<int64_t>(int64_t(r), 0), in - 1);
}

/// Resize's scale per axis (from `scales`, or `sizes` over the input's), "" or the problem.
std::vector<double> resize_scales(const Graph& g, const Op& op, std::string& problem) {
    const std::vector<uint64_t>& x = g.tensor(op.inputs[0]).shape;
    const bool has_scales = op.inputs.size() > 2 && op.inputs[2] != kNoTensor;
    const bool has_sizes = op.inputs.size() > 3 && op.inputs[3] != kNoTensor;
    std::vector<double> scales;
    if (has_scales == has_sizes) {
        problem = "give exactly one of the inputs 'scales' and 'sizes'";
        return scales;
    }
    const Tensor& t = g.tensor(op.inputs[has_scales ? 2 : 3]);
    if (has_scales) {
        const auto* v = std::get_if<std::vector<double>>(&t.value);
        if (v) scales = *v;
    } else if (const auto* v = std::get_if<std::vector<int64_t>>(&t.value)) {
        for (size_t d = 0; d < v->size() && d < x.size(); ++d) scales.push_back(double((*v)[d]) / double(x[d]));
    }
    if (scales.empty()) {
        problem = std::string("input '") + (has_scales ? "scales" : "sizes") + "' ('" + t.name +
                  "') needs inline values (\"value\": [...]) for the output's shape to be known";
        return scales;
    }
    if (scales.size() != x.size())
        problem = std::string("input '") + (has_scales ? "scales" : "sizes") + "' has " + n(int64_t(scales.size())) +
                  " values for an input of rank " + n(int64_t(x.size()));
    return scales;
}

hw::VectorWindow resize_window(const Graph& g, const Op& op, std::string& problem) {
    hw::VectorWindow w;
    const std::vector<uint64_t>& x = g.tensor(op.inputs[0]).shape;
    const std::vector<uint64_t>& y = g.tensor(op.outputs[0]).shape;
    const std::vector<double> scales = resize_scales(g, op, problem);
    if (!problem.empty()) return w;
    if (x.size() != 4) {
        problem = "input 'X' of shape " + shape_string(x) + " not yet supported (only NCHW, rank 4)";
        return w;
    }
    const std::string transform = string_attr(op, "coordinate_transformation_mode");
    const std::string nearest = string_attr(op, "nearest_mode");
    for (size_t d = 0; d < 4; ++d) {
        if (y[d] % x[d] != 0 || (d < 2 && y[d] != x[d])) {
            problem = "scale " + attr_string(y[d] / double(x[d])) + " of axis " + n(int64_t(d)) + " (" + n(int64_t(x[d])) +
                      " to " + n(int64_t(y[d])) + ") not yet supported (only integer scales of H and W, 1 of N and C)";
            return w;
        }
        if (d < 2) continue;
        const int64_t s = int64_t(y[d] / x[d]);
        for (int64_t i = 0; i < int64_t(y[d]); ++i) {
            const int64_t from = resize_source(i, scales[d], int64_t(x[d]), int64_t(y[d]), transform, nearest);
            if (from != i / s) {
                problem = "coordinate_transformation_mode = '" + transform + "' with nearest_mode = '" + nearest +
                          "' maps output index " + n(i) + " of axis " + n(int64_t(d)) + " to input index " + n(from) +
                          " at scale " + n(s) + " (only the modes where output i reads input floor(i / scale) lower)";
                return w;
            }
        }
    }
    w.in_h = uint32_t(x[2]), w.in_w = uint32_t(x[3]), w.out_h = uint32_t(y[2]), w.out_w = uint32_t(y[3]);
    w.scale_h = w.out_h / w.in_h, w.scale_w = w.out_w / w.in_w;
    return w;
}

}  // namespace

bool is_window_kind(const std::string& kind) {
    return kind == "MaxPool" || kind == "AveragePool" || kind == "depthwise_conv" || kind == "Resize";
}

hw::VectorFunction window_function(const std::string& kind) {
    if (kind == "MaxPool") return hw::VectorFunction::MaxPool;
    if (kind == "AveragePool") return hw::VectorFunction::AveragePool;
    if (kind == "depthwise_conv") return hw::VectorFunction::DepthwiseConv;
    return hw::VectorFunction::ResizeNearest;
}

hw::VectorWindow window_of(const Graph& g, const Op& op, std::string& problem) {
    if (op.kind == "Resize") return resize_window(g, op, problem);
    hw::VectorWindow w;
    const std::vector<uint64_t>& x = g.tensor(op.inputs.at(0)).shape;
    if (x.size() != 4) {
        problem = "input 'X' of shape " + shape_string(x) + " not yet supported (only NCHW, rank 4)";
        return w;
    }
    std::vector<int64_t> kernel = ints_or(op, "kernel_shape", 2, 0, problem);
    if (op.kind == "depthwise_conv") {
        const std::vector<uint64_t>& wt = g.tensor(op.inputs.at(1)).shape;
        const std::vector<int64_t> from_w = {int64_t(wt.size() == 4 ? wt[2] : 0), int64_t(wt.size() == 4 ? wt[3] : 0)};
        if (attribute_of(op, schema_of(op), "kernel_shape") && kernel != from_w && problem.empty())
            problem = "attribute 'kernel_shape' = " + attr_string(kernel) + " is not W's " + attr_string(from_w);
        kernel = from_w;
    } else if (!attribute_of(op, schema_of(op), "kernel_shape") && problem.empty()) {
        problem = "attribute 'kernel_shape' is required";
    }
    const std::vector<int64_t> strides = ints_or(op, "strides", 2, 1, problem);
    const std::vector<int64_t> dilations = ints_or(op, "dilations", 2, 1, problem);
    std::vector<int64_t> pads = ints_or(op, "pads", 4, 0, problem);
    if (!problem.empty()) return w;
    const char* names[] = {"kernel_shape", "strides", "dilations"};
    const std::vector<int64_t>* lists[] = {&kernel, &strides, &dilations};
    for (int l = 0; l < 3; ++l)
        for (size_t d = 0; d < 2; ++d)
            if ((*lists[l])[d] < 1) {
                problem = "attribute '" + std::string(names[l]) + "' = " + attr_string(*lists[l]) + " has " +
                          n((*lists[l])[d]) + " at " + n(int64_t(d)) + " (each must be at least 1)";
                return w;
            }
    for (size_t d = 0; d < 4; ++d)
        if (pads[d] < 0) {
            problem = "attribute 'pads' = " + attr_string(pads) + " has a negative pad " + n(pads[d]) + " at " + n(int64_t(d));
            return w;
        }
    const std::string auto_pad = string_attr(op, "auto_pad");
    const bool ceil_mode = int_attr(op, "ceil_mode") != 0, pool = op.kind != "depthwise_conv";
    int64_t out[2];
    for (size_t d = 0; d < 2; ++d) {
        const int64_t in = int64_t(x[2 + d]), extent = (kernel[d] - 1) * dilations[d] + 1, s = strides[d];
        if (auto_pad == "VALID") pads[d] = pads[d + 2] = 0;
        if (auto_pad == "SAME_UPPER" || auto_pad == "SAME_LOWER") {
            const int64_t o = (in + s - 1) / s, total = std::max<int64_t>(0, (o - 1) * s + extent - in);
            pads[d] = auto_pad == "SAME_UPPER" ? total / 2 : total - total / 2;
            pads[d + 2] = total - pads[d];
        } else if (auto_pad != "NOTSET" && auto_pad != "VALID") {
            problem = "attribute 'auto_pad' = '" + auto_pad + "' is not NOTSET, VALID, SAME_UPPER or SAME_LOWER";
            return w;
        }
        const int64_t padded = in + pads[d] + pads[d + 2];
        if (padded < extent) {
            problem = "kernel_shape[" + n(int64_t(d)) + "] = " + n(kernel[d]) + " (dilated: " + n(extent) +
                      ") is larger than the padded input's axis " + n(int64_t(d + 2)) + " (" + n(in) + " + pads " +
                      n(pads[d]) + " + " + n(pads[d + 2]) + " = " + n(padded) + ")";
            return w;
        }
        if (pool && (pads[d] >= extent || pads[d + 2] >= extent)) {
            problem = "attribute 'pads' = " + attr_string(pads) + ": a pad of axis " + n(int64_t(d + 2)) +
                      " is not smaller than the kernel's " + n(extent) + " (windows entirely in the padding)";
            return w;
        }
        out[d] = (padded - extent) / s + 1;
        if (ceil_mode && auto_pad == "NOTSET") {
            out[d] = (padded - extent + s - 1) / s + 1;
            if ((out[d] - 1) * s >= in + pads[d]) --out[d];
        }
    }
    w.in_h = uint32_t(x[2]), w.in_w = uint32_t(x[3]), w.out_h = uint32_t(out[0]), w.out_w = uint32_t(out[1]);
    w.kernel_h = uint32_t(kernel[0]), w.kernel_w = uint32_t(kernel[1]);
    w.stride_h = uint32_t(strides[0]), w.stride_w = uint32_t(strides[1]);
    w.dilation_h = uint32_t(dilations[0]), w.dilation_w = uint32_t(dilations[1]);
    w.pad_top = uint32_t(pads[0]), w.pad_left = uint32_t(pads[1]), w.pad_bottom = uint32_t(pads[2]);
    w.pad_right = uint32_t(pads[3]);
    w.count_include_pad = op.kind == "AveragePool" && int_attr(op, "count_include_pad") != 0;
    w.channels = uint32_t(x[1]);
    return w;
}

namespace {

/// The window ops' shared checks: X float NCHW, then the window (its problem fails the op).
hw::VectorWindow checked_window(InferContext& c) {
    c.need_rank(0, 4, 4);
    if (!quantized_operand(c, 0)) c.need_dtype(0, {DType::Float32, DType::Float16, DType::BFloat16});
    Graph scratch;  // window_of reads the op's X (and W) shapes from a graph
    std::vector<uint32_t> inputs;
    for (size_t i = 0; i < c.input_count(); ++i) {
        if (!c.has_input(i)) {
            inputs.push_back(kNoTensor);
            continue;
        }
        Tensor t = c.input(i);
        t.name = "t" + std::to_string(i);
        t.role = TensorRole::Input;
        inputs.push_back(scratch.add_tensor(t));
    }
    Op op = c.op();
    op.inputs = inputs;
    op.outputs = {};
    std::string problem;
    const hw::VectorWindow w = window_of(scratch, op, problem);
    if (!problem.empty()) c.fail(problem);
    return w;
}

void infer_pool(InferContext& c) {
    if (c.op().kind == "MaxPool") {
        if (c.has_output(1)) c.fail("output 'Indices' not yet supported");
        if (c.int_attr("storage_order") != 0)
            c.fail("attribute 'storage_order' = " + n(c.int_attr("storage_order")) + " not supported (only 0)");
    }
    const hw::VectorWindow w = checked_window(c);
    c.output(0, {c.shape(0)[0], c.shape(0)[1], w.out_h, w.out_w}, vector_dtype(c, {0}));
}

void infer_depthwise(InferContext& c) {
    c.need_rank(0, 4, 4);
    c.need_rank(1, 4, 4);
    const DType type = vector_dtype(c, {0, 1, 2});
    const uint64_t channels = c.shape(0)[1];
    const std::vector<uint64_t>& w = c.shape(1);
    if (w[0] != channels || w[1] != 1)
        c.fail(c.describe(1) + " is not [C, 1, kH, kW] with C = " + n(int64_t(channels)) + " (X's channels)");
    // ONNX Conv's group may come along (a Conv rewritten as this op): it must be C.
    if (c.has_attr("group") && c.int_attr("group") != int64_t(channels))
        c.fail("attribute 'group' = " + n(c.int_attr("group")) + " is not X's channels " + n(int64_t(channels)) +
               " (depthwise)");
    if (c.has_input(2)) {
        if (c.shape(2) != std::vector<uint64_t>{channels})
            c.fail(c.describe(2) + " is not [" + n(int64_t(channels)) + "] (X's channels)");
    }
    const hw::VectorWindow win = checked_window(c);
    c.output(0, {c.shape(0)[0], channels, win.out_h, win.out_w}, type);
}

void infer_global_average_pool(InferContext& c) {
    c.need_rank(0, 3, kMaxRank);
    std::vector<uint64_t> out = {c.shape(0)[0], c.shape(0)[1]};
    out.resize(c.rank(0), 1);
    c.output(0, out, vector_dtype(c, {0}));
}

void infer_batch_norm(InferContext& c) {
    c.need_rank(0, 2, kMaxRank);
    if (c.int_attr("training_mode") != 0)
        c.fail("attribute 'training_mode' = " + n(c.int_attr("training_mode")) + " not supported (only inference, 0)");
    for (size_t i : {size_t(1), size_t(2)})
        if (c.has_output(i)) c.fail("output '" + std::string(i == 1 ? "running_mean" : "running_var") +
                                    "' is training_mode's (not supported)");
    const uint64_t channels = c.shape(0)[1];
    for (size_t i = 1; i < 5; ++i) {
        c.same_dtype(0, i);
        if (c.shape(i) != std::vector<uint64_t>{channels})
            c.fail(c.describe(i) + " is not [" + n(int64_t(channels)) + "] (X's channels)");
    }
    c.output(0, c.shape(0), c.dtype(0));
}

void infer_resize(InferContext& c) {
    if (c.string_attr("mode") != "nearest")
        c.fail("attribute 'mode' = '" + c.string_attr("mode") + "' not supported (only 'nearest')");
    Graph scratch;
    Tensor x = c.input(0);
    x.name = "x", x.role = TensorRole::Input;
    Op op = c.op();
    op.inputs = {scratch.add_tensor(x), kNoTensor, kNoTensor, kNoTensor};
    for (size_t i : {size_t(2), size_t(3)})
        if (c.has_input(i)) {
            Tensor t = c.input(i);
            t.name = "t" + std::to_string(i), t.role = TensorRole::Constant;
            op.inputs[i] = scratch.add_tensor(t);
        }
    std::string problem;
    const std::vector<double> scales = resize_scales(scratch, op, problem);
    if (!problem.empty()) c.fail(problem);
    std::vector<uint64_t> out;
    for (size_t d = 0; d < scales.size(); ++d) {
        if (!(scales[d] > 0)) c.fail("scale " + attr_string(scales[d]) + " of axis " + n(int64_t(d)) + " is not positive");
        // With sizes the output is sizes exactly; with scales floor(in x scale) (ONNX).
        out.push_back(c.has_input(3) ? uint64_t(c.int_values(3)[d])
                                     : uint64_t(std::floor(double(c.shape(0)[d]) * scales[d])));
    }
    c.output(0, out, c.dtype(0));
}

/// [N, C, S...] averaged over S: viewed as [N, C, prod S], ReduceMean over the last axis, a view back.
bool expand_global_average_pool(Graph& g, const Op& op, std::vector<Op>& ops) {
    const std::vector<uint64_t> x = g.tensor(op.inputs[0]).shape;
    const uint64_t spatial = std::accumulate(x.begin() + 2, x.end(), uint64_t(1), std::multiplies<>());
    Expansion e(g, op, ops);
    const uint32_t rows = e.reshape("planes", op.inputs[0], {x[0], x[1], spatial});
    const uint32_t mean = e.add("ReduceMean", "mean", {rows, e.ints("axes", {-1})}, kNoTensor, {{"keepdims", int64_t(0)}});
    e.reshape("y", mean, g.tensor(op.outputs[0]).shape, op.outputs[0]);
    return true;
}

/// y = x s + t per channel, s = scale / sqrt(var + epsilon) and t = B - mean s computed on the
/// engine over [C], then applied as a 1 x 1 depthwise_conv (weight s, bias t) over X viewed
/// as [N, C, 1, S].
bool expand_batch_norm(Graph& g, const Op& op, std::vector<Op>& ops) {
    const std::vector<uint64_t> x = g.tensor(op.inputs[0]).shape;
    const uint64_t channels = x[1];
    Expansion e(g, op, ops);
    Tensor eps(derived_tensor_name(g, op.name, "epsilon"), {1}, DType::Float32, TensorRole::Constant);
    eps.value = std::vector<double>{double(float(attr_number(*attribute_of(op, schema_of(op), "epsilon"))))};
    const uint32_t epsilon = g.add_tensor(std::move(eps));
    const uint32_t var = e.add("Add", "var_eps", {op.inputs[4], epsilon}, kNoTensor);
    const uint32_t scale = e.add("Div", "s", {op.inputs[1], e.add("Sqrt", "std", {var}, kNoTensor)}, kNoTensor);
    const uint32_t shift = e.add("Sub", "t", {op.inputs[2], e.add("Mul", "mean_s", {op.inputs[3], scale}, kNoTensor)}, kNoTensor);
    const uint32_t weight = e.reshape("weight", scale, {channels, 1, 1, 1});
    const bool planar = x.size() == 4;
    const uint64_t spatial = std::accumulate(x.begin() + 2, x.end(), uint64_t(1), std::multiplies<>());
    const uint32_t in = planar ? op.inputs[0] : e.reshape("planes", op.inputs[0], {x[0], channels, 1, spatial});
    const uint32_t y = e.add("depthwise_conv", "apply", {in, weight, shift}, planar ? op.outputs[0] : kNoTensor);
    if (!planar) e.reshape("y", y, x, op.outputs[0]);
    return true;
}

}  // namespace

double depthwise_conv_vector_cycles(const hw::Config& config, const std::vector<uint64_t>& x, uint64_t kernel_h,
                                    uint64_t kernel_w, const std::vector<int64_t>& pads,
                                    const std::vector<int64_t>& strides, const std::vector<int64_t>& dilations,
                                    bool bias) {
    Graph g;
    Op op;
    op.name = "depthwise", op.kind = "depthwise_conv";
    op.inputs = {g.add_tensor(Tensor("x", x, DType::Float32, TensorRole::Input)),
                 g.add_tensor(Tensor("w", {x.at(1), 1, kernel_h, kernel_w}, DType::Float32, TensorRole::Input))};
    if (bias) op.inputs.push_back(g.add_tensor(Tensor("b", {x.at(1)}, DType::Float32, TensorRole::Input)));
    op.outputs = {g.add_tensor(Tensor("y", {}))};
    op.attributes = {{"pads", pads}, {"strides", strides}, {"dilations", dilations}};
    g.add_op(op);
    g.check("depthwise_conv estimate");
    return choose_vector_tiling(config, g, 0).cycles;
}

/// A window op's schema: ONNX's auto_pad, kernel_shape, pads, strides and `extra`.
OpSchema window_schema(const char* kind, std::vector<std::string> inputs, std::vector<std::string> outputs,
                       std::vector<AttrSpec> extra, void (*infer)(InferContext&)) {
    OpSchema s;
    s.kind = kind, s.inputs = std::move(inputs), s.outputs = std::move(outputs);
    s.min_inputs = std::min<size_t>(2, s.inputs.size());
    s.attributes = {{"auto_pad", AttrType::String, std::string("NOTSET")},
                    {"kernel_shape", AttrType::Ints, std::nullopt},
                    {"pads", AttrType::Ints, std::nullopt},
                    {"strides", AttrType::Ints, std::nullopt}};
    s.attributes.insert(s.attributes.end(), extra.begin(), extra.end());
    s.infer = infer;
    s.lowering_problem = vector_lowering_problem;
    return s;
}

void register_window(OpRegistry& registry) {
    const AttrSpec ceil_mode{"ceil_mode", AttrType::Int, int64_t(0)};
    const AttrSpec dilations{"dilations", AttrType::Ints, std::nullopt};
    registry.add(window_schema("MaxPool", {"X"}, {"Y", "Indices"},
                               {ceil_mode, dilations, {"storage_order", AttrType::Int, int64_t(0)}}, infer_pool));
    registry.add(window_schema("AveragePool", {"X"}, {"Y"},
                               {ceil_mode, {"count_include_pad", AttrType::Int, int64_t(0)}}, infer_pool));
    registry.add(window_schema("depthwise_conv", {"X", "W", "B"}, {"Y"},
                               {dilations, {"group", AttrType::Int, std::nullopt}}, infer_depthwise));
    OpSchema global;
    global.kind = "GlobalAveragePool", global.inputs = {"X"}, global.outputs = {"Y"};
    global.infer = infer_global_average_pool;
    global.expand = expand_global_average_pool;
    global.lowering_problem = expanded_or_vector_problem;
    registry.add(std::move(global));
    OpSchema batch_norm;
    batch_norm.kind = "BatchNormalization";
    batch_norm.inputs = {"X", "scale", "B", "input_mean", "input_var"}, batch_norm.min_inputs = 5;
    batch_norm.outputs = {"Y", "running_mean", "running_var"};
    batch_norm.attributes = {{"epsilon", AttrType::Float, 1e-5},
                             {"momentum", AttrType::Float, 0.9},
                             {"training_mode", AttrType::Int, int64_t(0)}};
    batch_norm.infer = infer_batch_norm;
    batch_norm.expand = expand_batch_norm;
    batch_norm.lowering_problem = expanded_or_vector_problem;
    registry.add(std::move(batch_norm));
    OpSchema resize;
    resize.kind = "Resize", resize.inputs = {"X", "roi", "scales", "sizes"}, resize.outputs = {"Y"};
    resize.attributes = {{"coordinate_transformation_mode", AttrType::String, std::string("half_pixel")},
                         {"cubic_coeff_a", AttrType::Float, -0.75},
                         {"exclude_outside", AttrType::Int, int64_t(0)},
                         {"extrapolation_value", AttrType::Float, 0.0},
                         {"mode", AttrType::String, std::string("nearest")},
                         {"nearest_mode", AttrType::String, std::string("round_prefer_floor")}};
    resize.infer = infer_resize;
    resize.lowering_problem = vector_lowering_problem;
    resize.compile_time_inputs = {1, 2, 3};
    registry.add(std::move(resize));
}

}  // namespace kpu::compiler
