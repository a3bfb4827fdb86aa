// Analytic timing and energy of the vector engine (docs/models.md, Vector engine, derives
// them). Plain C++ so the compiler's cost model and the tests use the same formula as the
// VectorEngine model.
//
// The engine streams a command's tile through `lanes` ALU lanes and an SFU in passes. A pass
// over the tile takes each row in ceil(cols / lanes) lane groups (a group never spans two
// rows: rows may be strided apart, and a row's elements reduce together); a pass over the
// per-row results (the row statistics of softmax and the norms) takes ceil(rows / lanes)
// groups. The ALU of operand a's element type does ops_per_cycle (the config's
// vector.element_types) ops per lane per cycle, so an ALU pass's lane group is lanes x
// ops_per_cycle elements wide (float32: 1, the lanes alone); SFU passes keep `lanes`-wide
// groups whatever the type. A group costs 1 cycle for an ALU op, the config's cycles for an SFU function; the
// ALU arithmetic around an SFU evaluation in a pass is pipelined with it. A window function
// takes each row's output plane in ceil(out_h out_w / lanes) groups, a lane per output
// element; a group costs a cycle per tap of the kernel (one max, add or multiply-add each),
// the lanes reading their taps from the plane in L2. So
//
//   cycles = latency_cycles + sum over passes of groups x cost
#pragma once

#include <algorithm>
#include <cassert>
#include <cstdint>

#include "hardware/config.h"
#include "hardware/fabric_timing.h"
#include "hardware/vector_command.h"

namespace kpu::hw {

/// One sweep of the engine over a tile or over its per-row results.
struct VectorPass {
    const char* what = "";      ///< e.g. "exp and sum", as docs/models.md lists the passes
    uint64_t groups = 0;        ///< lane groups: rows x ceil(cols / lanes), ceil(rows / lanes), or rows x ceil(out_h out_w / lanes)
    uint64_t elements = 0;      ///< ALU operations: rows x cols, rows, or rows x out_h out_w x taps
    uint32_t cost = 1;          ///< cycles per lane group
    uint32_t sfu_per_element = 0;  ///< SFU evaluations per element (0: ALU only)
};

/// The passes of one command: at most four (softmax, layer_norm).
struct VectorPasses {
    static constexpr int kMax = 4;
    VectorPass pass[kMax];  ///< the first `count` are the command's, in order
    int count = 0;          ///< 0 for an unknown function or an empty tile

    const VectorPass* begin() const { return pass; }
    const VectorPass* end() const { return pass + count; }
};

/// The vector engine's entry for element type `type` in `unit` (float32 always has one: its
/// rate 1 and energy_pj_per_op, even where a hand-built unit lists none), nullptr when the
/// config does not list the type.
inline const ElementType* vector_element_type(const VectorUnit& unit, DType type) {
    static const ElementType kFloat32{"float32", 1, 0};
    for (const ElementType& t : unit.element_types)
        if (t.name == to_string(type)) return &t;
    return type == DType::Float32 ? &kFloat32 : nullptr;
}

/// ALU ops per lane per cycle on the type of operand a (1 for a type the unit does not list:
/// the engine refuses such a command).
inline uint32_t alu_ops_per_cycle(const VectorCommand& command, const VectorUnit& unit) {
    const ElementType* t = vector_element_type(unit, command.a.encoding.type);
    return t ? std::max(1u, t->ops_per_cycle) : 1;
}

/// The energy of one ALU op on the type of operand a: float32's is energy_pj_per_op.
inline double alu_energy_pj(const VectorCommand& command, const VectorUnit& unit) {
    const ElementType* t = vector_element_type(unit, command.a.encoding.type);
    return t && command.a.encoding.type != DType::Float32 ? t->energy_pj_per_op : unit.energy_pj_per_op;
}

/// The passes `command` takes on `unit` (none for an unknown function or an empty tile).
inline VectorPasses vector_passes(const VectorCommand& command, const VectorUnit& unit) {
    VectorPasses out;
    if (command.rows == 0 || command.cols == 0) return out;
    auto add = [&](const VectorPass& pass) {
        assert(out.count < VectorPasses::kMax);
        out.pass[out.count++] = pass;
    };
    const uint64_t rows = command.rows, cols = command.cols, lanes = unit.lanes;
    const uint64_t alu_lanes = lanes * alu_ops_per_cycle(command, unit);
    const uint64_t tile_groups = rows * ceil_div(cols, lanes), row_groups = ceil_div(rows, lanes);
    const uint64_t alu_tile_groups = rows * ceil_div(cols, alu_lanes), alu_row_groups = ceil_div(rows, alu_lanes);
    // A pass over the whole tile: an ALU op, or one (or `evals`) evaluations of an SFU function.
    auto tile_alu = [&](const char* what) { add({what, alu_tile_groups, rows * cols, 1, 0}); };
    auto tile_sfu = [&](const char* what, SfuFunction f, uint32_t evals = 1) {
        add({what, tile_groups, rows * cols, evals * unit.cycles_of(f), evals});
    };
    auto rows_sfu = [&](const char* what, SfuFunction f) {
        add({what, row_groups, rows, unit.cycles_of(f), 1});
    };
    // A window function: a lane per output element, `taps` ALU cycles per group.
    const uint64_t outputs = rows * y_cols(command), window_groups = rows * ceil_div(y_cols(command), alu_lanes);
    auto window_alu = [&](const char* what, uint64_t taps) {
        add({what, window_groups, outputs * taps, uint32_t(taps), 0});
    };
    const uint64_t taps = uint64_t(command.window.kernel_h) * command.window.kernel_w;
    using F = VectorFunction;
    switch (command.function) {
        case F::Copy: case F::Relu: case F::LeakyRelu: case F::Neg: case F::Abs: case F::Clip: case F::HardSigmoid:
        case F::HardSwish: case F::Add: case F::Sub: case F::Mul: case F::Max: case F::Min:
            tile_alu(to_string(command.function));
            break;
        case F::Gelu: tile_sfu("gelu (erf)", SfuFunction::Erf); break;
        case F::Erf: tile_sfu("erf", SfuFunction::Erf); break;
        case F::GeluTanh: tile_sfu("gelu (tanh)", SfuFunction::Tanh); break;
        case F::Tanh: tile_sfu("tanh", SfuFunction::Tanh); break;
        case F::Sigmoid: tile_sfu("sigmoid", SfuFunction::Sigmoid); break;
        case F::Silu: tile_sfu("silu (sigmoid)", SfuFunction::Sigmoid); break;
        case F::Exp: tile_sfu("exp", SfuFunction::Exp); break;
        case F::Sqrt: tile_sfu("sqrt (x rsqrt x)", SfuFunction::Rsqrt); break;
        case F::Reciprocal: tile_sfu("reciprocal", SfuFunction::Reciprocal); break;
        case F::Div: tile_sfu("divide (a x 1/b)", SfuFunction::Reciprocal); break;
        // a^b = exp(b ln a): two SFU evaluations, the logarithm charged as exp.
        case F::Pow: tile_sfu("pow (exp(b ln a))", SfuFunction::Exp, 2); break;
        // The reductions' final cross-lane tree and ReduceMean's 1/cols ride in the pass.
        case F::ReduceSum: case F::ReduceMean: tile_alu("sum"); break;
        case F::ReduceMax: tile_alu("max"); break;
        case F::Softmax:
            tile_alu("max");
            tile_sfu("exp and sum", SfuFunction::Exp);
            rows_sfu("reciprocal of the sums", SfuFunction::Reciprocal);
            tile_alu("scale by the reciprocal");
            break;
        case F::LayerNorm:
            tile_alu("sum (mean)");
            tile_alu("sum of squared deviations (variance)");
            rows_sfu("rsqrt(variance + epsilon)", SfuFunction::Rsqrt);
            tile_alu("normalize, weight, bias");
            break;
        case F::RmsNorm:
            tile_alu("sum of squares");
            rows_sfu("rsqrt(mean square + epsilon)", SfuFunction::Rsqrt);
            tile_alu("normalize, weight, bias");
            break;
        case F::MaxPool: window_alu("window max", taps); break;
        case F::AveragePool:
            window_alu("window sum", taps);
            window_alu("times 1 / count", 1);
            break;
        // The accumulator starts at the channel's bias: a multiply-add per tap.
        case F::DepthwiseConv: window_alu("window multiply-add", taps); break;
        case F::ResizeNearest: window_alu("nearest copy", 1); break;
        // Flash attention's online softmax: the block's row max against the running one, the
        // rows' corrections, the exponentials and their sums, then l = c l + sum per row.
        case F::OnlineSoftmax:
            tile_alu("scale, mask and max");
            rows_sfu("corrections exp(m - m')", SfuFunction::Exp);
            tile_sfu("exp and sum", SfuFunction::Exp);
            add({"l = c l + sum", alu_row_groups, rows, 1, 0});
            break;
        case F::OnlineAccumulate: tile_alu("multiply-add (c y + a)"); break;
        case F::OnlineFinish:
            rows_sfu("reciprocal of l", SfuFunction::Reciprocal);
            tile_alu("scale by the reciprocal");
            break;
    }
    return out;
}

/// Vector engine cycles (fabric clock) of `command`: the pipeline fill plus every pass.
inline uint64_t vector_cycles(const VectorCommand& command, const VectorUnit& unit) {
    const VectorPasses passes = vector_passes(command, unit);
    if (passes.count == 0) return 0;
    uint64_t cycles = unit.latency_cycles;
    for (const VectorPass& p : passes) cycles += p.groups * p.cost;
    return cycles;
}

/// Dynamic energy of `command` in pJ: every element of an ALU pass at the ALU energy of
/// operand a's type (alu_energy_pj; float32: energy_pj_per_op), every SFU evaluation at
/// energy_pj_per_sfu_op (which covers the ALU arithmetic around it).
inline double vector_energy_pj(const VectorCommand& command, const VectorUnit& unit) {
    double pj = 0;
    const double alu_pj = alu_energy_pj(command, unit);
    for (const VectorPass& p : vector_passes(command, unit))
        pj += double(p.elements) * (p.sfu_per_element ? p.sfu_per_element * unit.energy_pj_per_sfu_op : alu_pj);
    return pj;
}

/// ALU ops of `command` (the elements of its ALU passes), charged at operand a's type.
inline uint64_t vector_alu_ops(const VectorCommand& command, const VectorUnit& unit) {
    uint64_t ops = 0;
    for (const VectorPass& p : vector_passes(command, unit))
        if (!p.sfu_per_element) ops += p.elements;
    return ops;
}

}  // namespace kpu::hw
