#include "compiler/unit_choice.h"

#include <algorithm>

#include "compiler/ops/op_schema.h"
#include "compiler/ops/window.h"

namespace kpu::compiler {
namespace {

std::vector<int64_t> ints(const Op& op, const char* name, std::vector<int64_t> fallback) {
    const std::optional<AttrValue> v = attribute_of(op, schema_of(op), name);
    return v ? std::get<std::vector<int64_t>>(*v) : fallback;
}

/// The Conv as a depthwise_conv.
Op as_depthwise(const Op& op) {
    Op dw = op;
    dw.kind = "depthwise_conv";
    return dw;
}

/// Whether `op` is a depthwise Conv both units can run: float32 (the vector engine reads a
/// depthwise weight and bias as float32), group = C_in = C_out, pads given (auto_pad NOTSET),
/// and a plane the vector engine's tile holds.
bool depthwise(const Graph& g, const Op& op) {
    if (op.kind != "Conv" || std::get<std::string>(*attribute_of(op, schema_of(op), "auto_pad")) != "NOTSET")
        return false;
    for (uint32_t t : op.inputs)
        if (t != kNoTensor && g.tensor(t).dtype != DType::Float32) return false;
    const std::vector<uint64_t>& x = g.tensor(op.inputs[0]).shape;
    const std::vector<uint64_t>& w = g.tensor(op.inputs[1]).shape;
    const int64_t group = std::get<int64_t>(*attribute_of(op, schema_of(op), "group"));
    if (x.size() != 4 || group < 2 || uint64_t(group) != x[1] || w[0] != x[1] || w[1] != 1) return false;
    const Op dw = as_depthwise(op);
    return schema_of(dw).lowering_problem(g, dw).empty();
}

/// The fabric path's formula: per channel a one-column matmul of M = N OH OW rows and K = kH kW,
/// ceil(M / R) fabric passes of K cycles each (one column of C used), the channels spread
/// over the T compute tiles; or, if longer, its DRAM time: the conv's bytes plus its two
/// layout Transposes (the input and the output read and written once more), at the DMA
/// bandwidth.
double fabric_cycles(const hw::Config& config, uint64_t channels, uint64_t m, uint64_t k, uint64_t bytes,
                     uint64_t layout_bytes) {
    const hw::Derived d = hw::derive(config);
    const double compute = double(channels) * double((m + config.fabric.rows - 1) / config.fabric.rows) * double(k) /
                           double(config.compute_tiles);
    const double dram = double(bytes + layout_bytes) / d.dma_bandwidth * config.clocks.fabric_hz;
    return std::max(compute, dram);
}

}  // namespace

Graph choose_units(const Graph& graph, const hw::Config& config, std::vector<UnitChoice>* choices,
                   DepthwiseUnit unit) {
    return rewrite_ops(
        graph,
        [&](Graph& g, const Op& op, std::vector<Op>& ops) {
            if (!depthwise(g, op)) return false;
            UnitChoice c;
            c.op = op.name;
            const std::vector<uint64_t>& w = g.tensor(op.inputs[1]).shape;
            const bool bias = op.inputs.size() > 2 && op.inputs[2] != kNoTensor;
            c.vector_cycles = depthwise_conv_vector_cycles(config, g.tensor(op.inputs[0]).shape, w[2], w[3],
                                                           ints(op, "pads", {0, 0, 0, 0}), ints(op, "strides", {1, 1}),
                                                           ints(op, "dilations", {1, 1}), bias);
            const std::vector<uint64_t>& x = g.tensor(op.inputs[0]).shape;
            const std::vector<uint64_t>& y = g.tensor(op.outputs[0]).shape;
            const uint64_t in = g.tensor(op.inputs[0]).bytes(), out = g.tensor(op.outputs[0]).bytes();
            const uint64_t bytes = in + out + g.tensor(op.inputs[1]).bytes() + (bias ? g.tensor(op.inputs[2]).bytes() : 0);
            c.fabric_cycles = fabric_cycles(config, x[1], y[0] * y[2] * y[3], w[2] * w[3], bytes, 2 * (in + out));
            // The engine's formula against the same DRAM time, without the Transposes.
            c.vector_cycles = std::max(c.vector_cycles, double(bytes) / hw::derive(config).dma_bandwidth *
                                                            config.clocks.fabric_hz);
            c.vector = unit == DepthwiseUnit::Auto ? c.vector_cycles < c.fabric_cycles : unit == DepthwiseUnit::Vector;
            if (choices) choices->push_back(c);
            if (!c.vector) return false;
            ops.push_back(as_depthwise(op));
            return true;
        },
        "graph");
}

}  // namespace kpu::compiler
