// Convolution. ONNX's Conv (opset 11+): X [N, C_in, H, W], W [C_out, C_in / group, kH, kW],
// optional B [C_out] -> Y [N, C_out, OH, OW] with auto_pad, dilations, group, kernel_shape,
// pads [top, left, bottom, right] and strides; only 2-D convolutions (rank-4 X) so far.
//
// conv_nhwc (ours, what Conv expands into and what the fabric runs as an implicit GEMM):
// X [N, G, H, W, Cg] (each image's group g as H W pixels of Cg channels), W [G, kH, kW, Cg, Cog],
// optional B [G, Cog] -> Y [N, G, OH, OW, Cog], with strides, dilations and pads as Conv's
// (pads explicit). docs/compiler.md, "Convolution".
#include <algorithm>
#include <tuple>
#include <utility>

#include "compiler/compile_error.h"
#include "compiler/ops/expansion.h"
#include "compiler/ops/matmul.h"
#include "compiler/ops/op_schema.h"
#include "compiler/ops/quantize.h"

namespace kpu::compiler {

ConvGeometry::Rows ConvGeometry::region(uint64_t p0, uint64_t p1) const {
    const uint64_t oh0 = p0 / ow, oh1 = (p1 - 1) / ow + 1;
    const int64_t lo = std::max<int64_t>(0, int64_t(oh0 * stride_h) - int64_t(pad_top));
    const int64_t hi = std::min<int64_t>(int64_t(h), int64_t((oh1 - 1) * stride_h + (kh - 1) * dilation_h + 1) -
                                                         int64_t(pad_top));
    if (hi <= lo) return {0, 0};
    return {uint64_t(lo), uint64_t(hi - lo)};
}

uint64_t ConvGeometry::max_region_pixels(uint64_t pixels) const {
    // `pixels` consecutive output pixels span at most this many output rows (starting at the
    // last pixel of a row), each row stride_h input rows after the last.
    const uint64_t rows = std::min(oh, (pixels + ow - 2) / ow + 1);
    return std::min(h, (rows - 1) * stride_h + (kh - 1) * dilation_h + 1) * w;
}

namespace {

constexpr std::initializer_list<DType> kFloats = {DType::Float32, DType::Float16, DType::BFloat16};

/// A pair of spatial numbers or four pads, read from an ints attribute with a default.
std::vector<int64_t> ints_or(const InferContext& c, const char* name, size_t size, int64_t fallback) {
    if (!c.has_attr(name)) return std::vector<int64_t>(size, fallback);
    const std::vector<int64_t> v = c.ints_attr(name);
    if (v.size() != size)
        c.fail("attribute '" + std::string(name) + "' " + attr_string(v) + " has " + std::to_string(v.size()) +
               " values, expected " + std::to_string(size) + " for a 2-D convolution");
    return v;
}

/// auto_pad SAME_UPPER / SAME_LOWER: the output is ceil(in / stride), the pads before and
/// after split what that needs, the odd one at the end (UPPER) or the start (LOWER).
std::pair<int64_t, int64_t> same_pads(int64_t in, int64_t k, int64_t stride, int64_t dilation, bool upper) {
    const int64_t out = (in + stride - 1) / stride, extent = (k - 1) * dilation + 1;
    const int64_t total = std::max<int64_t>(0, (out - 1) * stride + extent - in);
    const int64_t small = total / 2, big = total - small;
    return upper ? std::pair{small, big} : std::pair{big, small};
}

/// Strides, dilations and pads as the op gives them (Conv: auto_pad resolved), validated; the
/// output's spatial size. `in` the input's H, W; `kernel` the kernel's kH, kW.
struct Spatial {
    std::vector<int64_t> strides, dilations, pads;  ///< pads [top, left, bottom, right]
    uint64_t oh = 0, ow = 0;
};

Spatial spatial(const InferContext& c, uint64_t h, uint64_t w, uint64_t kh, uint64_t kw, const std::string& auto_pad) {
    Spatial s;
    s.strides = ints_or(c, "strides", 2, 1);
    s.dilations = ints_or(c, "dilations", 2, 1);
    for (const auto& [name, values] : {std::pair<const char*, const std::vector<int64_t>*>{"strides", &s.strides},
                                       {"dilations", &s.dilations}})
        for (int64_t v : *values)
            if (v < 1) c.fail("attribute '" + std::string(name) + "' " + attr_string(*values) + " has a value below 1");
    const uint64_t in[2] = {h, w}, k[2] = {kh, kw};
    if (auto_pad == "NOTSET") {
        s.pads = ints_or(c, "pads", 4, 0);
        for (int64_t p : s.pads)
            if (p < 0) c.fail("attribute 'pads' " + attr_string(s.pads) + " has a negative pad");
    } else if (auto_pad == "VALID" || auto_pad == "SAME_UPPER" || auto_pad == "SAME_LOWER") {
        if (c.has_attr("pads"))
            c.fail("attribute 'pads' " + attr_string(c.ints_attr("pads")) + " given with auto_pad '" + auto_pad +
                   "' (use one or the other)");
        s.pads.assign(4, 0);
        if (auto_pad != "VALID")
            for (int d = 0; d < 2; ++d)
                std::tie(s.pads[d], s.pads[d + 2]) =
                    same_pads(int64_t(in[d]), int64_t(k[d]), s.strides[d], s.dilations[d], auto_pad == "SAME_UPPER");
    } else {
        c.fail("attribute 'auto_pad' is '" + auto_pad + "', expected NOTSET, SAME_UPPER, SAME_LOWER or VALID");
    }
    uint64_t out[2];
    for (int d = 0; d < 2; ++d) {
        const int64_t padded = int64_t(in[d]) + s.pads[d] + s.pads[d + 2];
        const int64_t extent = (int64_t(k[d]) - 1) * s.dilations[d] + 1;
        if (extent > padded)
            c.fail(std::string("the kernel's ") + (d ? "width" : "height") + " " + std::to_string(k[d]) +
                   " (dilated: " + std::to_string(extent) + ") is larger than the padded input's " +
                   std::to_string(padded) + " (" + std::to_string(in[d]) + " + pads " + std::to_string(s.pads[d]) +
                   " and " + std::to_string(s.pads[d + 2]) + ")");
        out[d] = uint64_t((padded - extent) / s.strides[d] + 1);
    }
    s.oh = out[0], s.ow = out[1];
    return s;
}

void infer_conv(InferContext& c) {
    if (c.dtype(0) != DType::Int8) c.need_dtype(0, kFloats);
    const DType type = product_dtype(c, {0, 1, {0}, 2});
    if (c.rank(0) != 4) {
        if (c.rank(0) == 3 || c.rank(0) == 5)
            c.fail(c.describe(0) + ": " + std::to_string(c.rank(0) - 2) +
                   "-D convolutions are not yet supported (only 2-D: X of rank 4)");
        c.need_rank(0, 4, 4);
    }
    c.need_rank(1, 4, 4);
    const auto& x = c.shape(0);
    const auto& w = c.shape(1);
    const int64_t group = c.int_attr("group");
    if (group < 1) c.fail("attribute 'group' is " + std::to_string(group) + ", expected at least 1");
    const uint64_t g = uint64_t(group), cin = x[1], cout = w[0];
    if (cin % g != 0)
        c.fail("attribute 'group' = " + std::to_string(g) + " does not divide the " + std::to_string(cin) +
               " channels of " + c.describe(0));
    if (cout % g != 0)
        c.fail("attribute 'group' = " + std::to_string(g) + " does not divide the " + std::to_string(cout) +
               " output channels of " + c.describe(1));
    if (w[1] != cin / g)
        c.fail(c.describe(1) + " has " + std::to_string(w[1]) + " input channels per group but " + c.describe(0) +
               " has " + std::to_string(cin) + " channels in " + std::to_string(g) + " group(s), " +
               std::to_string(cin / g) + " per group");
    if (c.has_attr("kernel_shape")) {
        const std::vector<int64_t> k = c.ints_attr("kernel_shape");
        if (k.size() != 2 || k[0] != int64_t(w[2]) || k[1] != int64_t(w[3]))
            c.fail("attribute 'kernel_shape' " + attr_string(k) + " does not match " + c.describe(1) + " ([" +
                   std::to_string(w[2]) + ", " + std::to_string(w[3]) + "])");
    }
    if (c.has_input(2)) {
        if (c.shape(2) != std::vector<uint64_t>{cout})
            c.fail(c.describe(2) + " is not [" + std::to_string(cout) + "] (one value per output channel)");
    }
    const Spatial s = spatial(c, x[2], x[3], w[2], w[3], c.string_attr("auto_pad"));
    c.output(0, {x[0], cout, s.oh, s.ow}, type);
}

void infer_conv_nhwc(InferContext& c) {
    need_activation(c);
    if (c.dtype(0) != DType::Int8) c.need_dtype(0, kFloats);
    const DType type = product_dtype(c, {0, 1, {0, 4}, 2});
    const bool integer = c.dtype(0) == DType::Int8;  // then the drain's scale and residual stages read float32
    c.need_rank(0, 5, 5);
    c.need_rank(1, 5, 5);
    const auto& x = c.shape(0);
    const auto& w = c.shape(1);
    if (w[0] != x[1] || w[3] != x[4])
        c.fail(c.describe(1) + " is not [G, kH, kW, Cg, Cog] with G = " + std::to_string(x[1]) + " and Cg = " +
               std::to_string(x[4]) + " of " + c.describe(0));
    if (c.has_input(2)) {
        if (c.shape(2) != std::vector<uint64_t>{w[0], w[4]})
            c.fail(c.describe(2) + " is not [" + std::to_string(w[0]) + ", " + std::to_string(w[4]) + "]");
    }
    const Spatial s = spatial(c, x[2], x[3], w[1], w[2], "NOTSET");
    const std::vector<uint64_t> y{x[0], x[1], s.oh, s.ow, w[4]};
    // The drain's epilogue (fuse-epilogue): a per-channel scale like the bias, a residual of Y's shape.
    if (c.has_input(3)) {
        if (integer) c.need_dtype(3, {DType::Float32});
        else c.same_dtype(0, 3);
        if (c.shape(3) != std::vector<uint64_t>{w[0], w[4]})
            c.fail(c.describe(3) + " is not [" + std::to_string(w[0]) + ", " + std::to_string(w[4]) + "]");
    }
    if (c.has_input(4)) {
        if (integer) c.need_dtype(4, {DType::Float32});
        else c.same_dtype(0, 4);
        if (c.shape(4) != y) c.fail(c.describe(4) + " is not Y's shape " + shape_string(y));
    }
    c.output(0, y, type);
}

/// Conv as the fabric runs it: the input to [N, G, H, W, Cg] (NHWC, each group's channels
/// together), the weights to [G, kH, kW, Cg, Cog] (K = (kh, kw, c) along the rows), conv_nhwc,
/// and the result back to NCHW. All layout changes are Transposes and views.
bool expand_conv(Graph& g, const Op& op, std::vector<Op>& ops) {
    Expansion e(g, op, ops);
    const OpSchema& schema = schema_of(op);
    const std::vector<uint64_t> xs = g.tensor(op.inputs[0]).shape, ws = g.tensor(op.inputs[1]).shape;
    const std::vector<uint64_t> ys = g.tensor(op.outputs[0]).shape;
    const uint64_t groups = uint64_t(std::get<int64_t>(*attribute_of(op, schema, "group")));
    const uint64_t n = xs[0], cin = xs[1], h = xs[2], w = xs[3], cg = cin / groups;
    const uint64_t cout = ws[0], cog = cout / groups, kh = ws[2], kw = ws[3], oh = ys[2], ow = ys[3];
    uint32_t x, x_view;
    if (groups == 1)
        x = e.reshape("x_groups", x_view = e.transpose("x_nhwc", op.inputs[0], {0, 2, 3, 1}), {n, 1, h, w, cin});
    else
        x = e.transpose("x_nhwc", x_view = e.reshape("x_groups", op.inputs[0], {n, groups, cg, h, w}), {0, 1, 3, 4, 2});
    const uint32_t w_view = e.reshape("w_groups", op.inputs[1], {groups, cog, cg, kh, kw});
    const uint32_t wt = e.transpose("w_taps", w_view, {0, 3, 4, 2, 1});
    std::vector<uint32_t> inputs{x, wt};
    if (op.inputs.size() > 2 && op.inputs[2] != kNoTensor) inputs.push_back(e.reshape("b_groups", op.inputs[2], {groups, cog}));
    // The pads as resolved by inference (auto_pad included): recomputed here from the shapes.
    std::vector<int64_t> strides{1, 1}, dilations{1, 1}, pads{0, 0, 0, 0};
    if (const auto v = attribute_of(op, schema, "strides")) strides = std::get<std::vector<int64_t>>(*v);
    if (const auto v = attribute_of(op, schema, "dilations")) dilations = std::get<std::vector<int64_t>>(*v);
    const std::string auto_pad = std::get<std::string>(*attribute_of(op, schema, "auto_pad"));
    if (auto_pad == "NOTSET") {
        if (const auto v = attribute_of(op, schema, "pads")) pads = std::get<std::vector<int64_t>>(*v);
    } else if (auto_pad != "VALID") {
        const uint64_t in[2] = {h, w}, k[2] = {kh, kw};
        for (int d = 0; d < 2; ++d)
            std::tie(pads[d], pads[d + 2]) =
                same_pads(int64_t(in[d]), int64_t(k[d]), strides[d], dilations[d], auto_pad == "SAME_UPPER");
    }
    const uint32_t y = e.add("conv_nhwc", "conv", inputs, kNoTensor,
                             {{"strides", strides}, {"dilations", dilations}, {"pads", pads}});
    uint32_t y_view;
    if (groups == 1)
        e.transpose("y_nchw", y_view = e.reshape("y_nhwc", y, {n, oh, ow, cout}), {0, 3, 1, 2}, op.outputs[0]);
    else
        e.reshape("y", y_view = e.transpose("y_nchw", y, {0, 1, 4, 2, 3}), {n, cout, oh, ow}, op.outputs[0]);
    // A quantized convolution's layout copies and views hold the same int8 values: the same
    // quantization, a per-channel weight's over its output channels (axis 1 of w_groups,
    // the last of w_taps; conv_lowering refuses per-channel weights of grouped ones).
    if (const std::optional<Quantization> q = g.tensor(op.inputs[0]).quant)
        for (uint32_t t : {x, x_view}) g.tensor(t).quant = q;
    if (std::optional<Quantization> q = g.tensor(op.inputs[1]).quant) {
        if (q->per_channel()) q->axis = 1;
        g.tensor(w_view).quant = q;
        if (q->per_channel()) q->axis = 4;
        g.tensor(wt).quant = q;
    }
    if (const std::optional<Quantization> q = g.tensor(op.outputs[0]).quant)
        for (uint32_t t : {y, y_view}) g.tensor(t).quant = q;
    return true;
}

std::string conv_lowering(const Graph& g, const Op& op) {
    const std::optional<Quantization>& w = g.tensor(op.inputs[1]).quant;
    const int64_t groups = std::get<int64_t>(*attribute_of(op, schema_of(op), "group"));
    if (w && w->per_channel() && groups != 1)
        return "a grouped convolution (group = " + std::to_string(groups) + ") with per-channel int8 weights '" +
               g.tensor(op.inputs[1]).name + "' not yet supported";
    return *expansion_problem(g, op);
}

std::vector<int64_t> ints_of(const Op& op, const OpSchema& schema, const char* name, std::vector<int64_t> fallback) {
    const auto v = attribute_of(op, schema, name);
    return v ? std::get<std::vector<int64_t>>(*v) : fallback;
}

}  // namespace

MatmulOperands conv_operands(const Graph& graph, const Op& op) {
    const OpSchema& schema = schema_of(op);
    const std::vector<uint64_t>& x = graph.tensor(op.inputs.at(0)).shape;
    const std::vector<uint64_t>& w = graph.tensor(op.inputs.at(1)).shape;
    const std::vector<uint64_t>& y = graph.tensor(op.outputs.at(0)).shape;
    const std::vector<int64_t> strides = ints_of(op, schema, "strides", {1, 1});
    const std::vector<int64_t> dilations = ints_of(op, schema, "dilations", {1, 1});
    const std::vector<int64_t> pads = ints_of(op, schema, "pads", {0, 0, 0, 0});
    ConvGeometry c;
    c.groups = x[1], c.h = x[2], c.w = x[3], c.cg = x[4];
    c.kh = w[1], c.kw = w[2], c.oh = y[2], c.ow = y[3];
    c.stride_h = uint64_t(strides[0]), c.stride_w = uint64_t(strides[1]);
    c.dilation_h = uint64_t(dilations[0]), c.dilation_w = uint64_t(dilations[1]);
    c.pad_top = uint64_t(pads[0]), c.pad_left = uint64_t(pads[1]);
    MatmulOperands out;
    out.a = op.inputs[0], out.b = op.inputs[1], out.c = op.outputs[0];
    if (op.inputs.size() > 2 && op.inputs[2] != kNoTensor) out.bias = op.inputs[2];
    out.m = c.oh * c.ow, out.n = w[4], out.k = c.kh * c.kw * c.cg;
    // Matrix t = (image, group): B's matrix is the group's (b_row), C's the t-th (c_row).
    out.batch = x[0] * c.groups;
    out.batch_rank = 2;
    out.batch_shape[0] = x[0], out.batch_shape[1] = c.groups;
    out.a_step[0] = c.groups, out.a_step[1] = 1;
    out.b_step[0] = 0, out.b_step[1] = 1;
    out.conv = c;
    out.activation = activation_of(op);
    epilogue_operands(op, out);
    return out;
}

void register_conv(OpRegistry& registry) {
    OpSchema s;
    s.kind = "Conv", s.inputs = {"X", "W", "B"}, s.min_inputs = 2, s.outputs = {"Y"};
    s.attributes = {{"auto_pad", AttrType::String, std::string("NOTSET")},
                    {"dilations", AttrType::Ints, std::nullopt},
                    {"group", AttrType::Int, int64_t(1)},
                    {"kernel_shape", AttrType::Ints, std::nullopt},
                    {"pads", AttrType::Ints, std::nullopt},
                    {"strides", AttrType::Ints, std::nullopt}};
    s.infer = infer_conv;
    s.expand = expand_conv;
    s.lowering_problem = conv_lowering;
    registry.add(std::move(s));

    OpSchema n;
    n.kind = "conv_nhwc", n.inputs = {"X", "W", "B", "scale", "residual"}, n.min_inputs = 2, n.outputs = {"Y"};
    n.attributes = {{"activation", AttrType::String, std::string("none")},  // the drain's (fuse-epilogue)
                    {"dilations", AttrType::Ints, std::vector<int64_t>{1, 1}},
                    {"pads", AttrType::Ints, std::vector<int64_t>{0, 0, 0, 0}},
                    {"strides", AttrType::Ints, std::vector<int64_t>{1, 1}}};
    n.infer = infer_conv_nhwc;
    n.lowering_problem = [](const Graph&, const Op&) { return std::string(); };
    registry.add(std::move(n));
}

}  // namespace kpu::compiler
