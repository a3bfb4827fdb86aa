// Helpers shared by the compiler tests (those of every layer are in tests/support/).
#pragma once

#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "compiler/binder.h"
#include "compiler/compile_error.h"
#include "compiler/generate.h"
#include "compiler/graph_json.h"
#include "compiler/kpu_format.h"
#include "hardware/config.h"
#include "tests/support/config.h"
#include "tests/support/graphs.h"

namespace kpu::compiler::test {

using kpu::test::config;
using kpu::test::example;
using kpu::test::matmul_json;

inline Program compile_matmul(uint64_t m, uint64_t n, uint64_t k, const hw::Config& target,
                              Dataflow dataflow = Dataflow::OutputStationary, bool bias = false) {
    return compile(parse_graph(matmul_json(m, n, k, bias), "test.json"), target, {dataflow});
}

/// x -> Relu -> t0 -> Relu -> t1 ... -> y: `ops` Relus over [rows, cols] floats.
inline Graph relu_chain(uint32_t ops, uint64_t rows, uint64_t cols) {
    std::string text = R"({"tensors": [{"name": "x", "shape": [)" + std::to_string(rows) + ", " +
                       std::to_string(cols) + R"(], "role": "input"})";
    std::string op_text;
    for (uint32_t i = 0; i < ops; ++i) {
        const std::string in = i == 0 ? "x" : "t" + std::to_string(i - 1);
        const std::string out = i + 1 == ops ? "y" : "t" + std::to_string(i);
        text += R"(, {"name": ")" + out + "\"}";
        op_text += std::string(i ? ", " : "") + R"({"op": "Relu", "name": "r)" + std::to_string(i) +
                   R"(", "inputs": [")" + in + R"("], "outputs": [")" + out + "\"]}";
    }
    return parse_graph(text + R"(], "ops": [)" + op_text + "]}", "chain.json");
}

/// The default options less fuse-ffn: an MLP's two matmuls stay two kernels, h in DRAM
/// (what the tests of the two-layer program look at).
inline CompileOptions unfused(Dataflow dataflow = Dataflow::OutputStationary) {
    CompileOptions options(dataflow);
    options.passes.disabled.push_back(Pass::FuseFfn);
    return options;
}

/// The MLP y = relu(x @ W1 + b1) @ W2 + b2 with h in DRAM.
inline std::string mlp_json(uint64_t batch, uint64_t in, uint64_t hidden, uint64_t out) {
    auto s = [](uint64_t v) { return std::to_string(v); };
    return R"({"tensors": [
      {"name": "x", "shape": [)" + s(batch) + ", " + s(in) + R"(], "role": "input"},
      {"name": "W1", "shape": [)" + s(in) + ", " + s(hidden) + R"(], "role": "constant"},
      {"name": "b1", "shape": [)" + s(hidden) + R"(], "role": "constant"},
      {"name": "h"},
      {"name": "W2", "shape": [)" + s(hidden) + ", " + s(out) + R"(], "role": "constant"},
      {"name": "b2", "shape": [)" + s(out) + R"(], "role": "constant"},
      {"name": "y"}],
     "ops": [
      {"op": "matmul", "name": "fc1", "A": "x", "B": "W1", "bias": "b1", "activation": "relu", "C": "h"},
      {"op": "matmul", "name": "fc2", "A": "h", "B": "W2", "bias": "b2", "C": "y"}]})";
}

/// What every lowered program must satisfy: the bound stream moves the DRAM bytes of the
/// hints, the closed-form op counts are the expanded stream's, and the .kpu round trip is
/// exact. Returns the bound program.
inline BoundProgram expect_consistent(const Program& p, const hw::Config& target) {
    BoundProgram b = bind(p, target);
    EXPECT_EQ(b.dram_read_bytes, p.hints.dram_read_bytes);
    EXPECT_EQ(b.dram_write_bytes, p.hints.dram_write_bytes);
    EXPECT_EQ(count_ops(p), count_expanded_ops(p));
    EXPECT_EQ(read_kpu(write_kpu(p), "t.kpu"), p);
    return b;
}

/// The DRAM bytes the op stream's LOADs read and its STOREs write.
struct StreamBytes {
    uint64_t read = 0, write = 0;
};
inline StreamBytes stream_bytes(const Program& p) {
    StreamBytes b;
    for_each_op(p, [&](const DfxOp& d) {
        if (d.kind == DfxOpKind::Load) b.read += d.bytes();
        if (d.kind == DfxOpKind::Store) b.write += d.bytes();
    });
    return b;
}

/// A graph's ops in order as "<kind> <output shape>" ("Transpose [1, 2, 8, 7]").
inline std::vector<std::string> op_summary(const Graph& g) {
    std::vector<std::string> out;
    for (const Op& op : g.ops()) out.push_back(op.kind + " " + shape_string(g.tensor(op.outputs[0]).shape));
    return out;
}

/// Runs `f` and returns the CompileError message; records a failure if nothing is thrown.
template <typename F>
std::string error_of(F&& f) {
    try {
        f();
    } catch (const CompileError& e) {
        return e.what();
    }
    ADD_FAILURE() << "no CompileError";
    return "";
}

}  // namespace kpu::compiler::test
