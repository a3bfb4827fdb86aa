// Views (Reshape, Flatten, Squeeze, Unsqueeze) lowered as aliases: no kernel, no DFX ops and
// no DRAM traffic of their own; the bound output shares its input's DRAM buffer, readers depend
// on the aliased tensor's producer, the .kpu round trip, and what is refused.
#include <gtest/gtest.h>

#include <algorithm>
#include <stdexcept>

#include "compiler/binder.h"
#include "compiler/dfx.h"
#include "compiler/kpu_format.h"
#include "tests/compiler/test_util.h"

namespace kpu::compiler {
namespace {

const BoundTensor& bound_tensor(const BoundProgram& b, const std::string& name) {
    for (const BoundTensor& t : b.tensors)
        if (t.name == name) return t;
    throw std::runtime_error("no bound tensor " + name);
}

// x -> Exp -> e -> Reshape [0, -1] -> r -> Flatten -> f -> Unsqueeze [0] -> u -> Squeeze [0] -> s
// -> Tanh -> y: a chain of views between two vector ops.
const char* kChain = R"({"tensors": [{"name": "x", "shape": [3, 4, 5], "role": "input"}, {"name": "e"},
    {"name": "shape", "dtype": "int64", "role": "constant", "value": [0, -1]}, {"name": "r"}, {"name": "f"},
    {"name": "ax", "dtype": "int64", "role": "constant", "value": [0]}, {"name": "u"}, {"name": "s"}, {"name": "y"}],
  "ops": [{"op": "Exp", "name": "ex", "inputs": ["x"], "outputs": ["e"]},
          {"op": "Reshape", "name": "rs", "inputs": ["e", "shape"], "outputs": ["r"]},
          {"op": "Flatten", "name": "fl", "inputs": ["r"], "outputs": ["f"]},
          {"op": "Unsqueeze", "name": "us", "inputs": ["f", "ax"], "outputs": ["u"]},
          {"op": "Squeeze", "name": "sq", "inputs": ["u", "ax"], "outputs": ["s"]},
          {"op": "Tanh", "name": "th", "inputs": ["s"], "outputs": ["y"]}]})";

TEST(ViewLowering, AChainOfViewsIsAnAliasWithNoTrafficAndNoOps) {
    for (const char* name : {"edge", "t64"}) {
        SCOPED_TRACE(name);
        const hw::Config config = test::config(name);
        const Program p = compile(parse_graph(kChain, "t.json"), config);
        ASSERT_EQ(p.kernels.size(), 2u);  // Exp and Tanh only
        EXPECT_EQ(p.kernels[0].op, 0u);
        EXPECT_EQ(p.kernels[1].op, 5u);
        // Each vector op reads and writes 60 floats once; the views add nothing.
        EXPECT_EQ(p.hints.dram_read_bytes, 2 * 60 * 4u);
        EXPECT_EQ(p.hints.dram_write_bytes, 2 * 60 * 4u);
        const BoundProgram b = bind(p, config);
        EXPECT_EQ(b.dram_read_bytes, p.hints.dram_read_bytes);
        EXPECT_EQ(b.dram_write_bytes, p.hints.dram_write_bytes);
        EXPECT_EQ(count_ops(p), count_expanded_ops(p));
        const BoundTensor& e = bound_tensor(b, "e");
        for (const char* alias : {"r", "f", "u", "s"}) {
            EXPECT_EQ(bound_tensor(b, alias).dram_addr, e.dram_addr) << alias;
            EXPECT_EQ(bound_tensor(b, alias).bytes, e.bytes) << alias;
        }
        EXPECT_NE(bound_tensor(b, "y").dram_addr, e.dram_addr);
        EXPECT_NE(bound_tensor(b, "x").dram_addr, e.dram_addr);
        // The shape and axes are compile-time values: no DRAM tensor.
        for (const BoundTensor& t : b.tensors) EXPECT_TRUE(t.name != "shape" && t.name != "ax") << t.name;
        // Every Tanh task reads through the views what Exp's tasks write: it depends on them.
        for (const Task& t : p.tasks) {
            if (t.kernel != 1) continue;
            for (uint32_t u = 0; u < p.tasks.size(); ++u) {
                const bool depends = std::find(t.deps.begin(), t.deps.end(), u) != t.deps.end();
                EXPECT_TRUE(p.tasks[u].kernel != 0 || depends) << "task " << u;
            }
        }
        // Each LOAD of the view 's' waits for a STORE of 'e' (the DFX ops carry the dependency).
        std::vector<DfxOp> ops;
        for_each_op(p, [&](const DfxOp& op) { ops.push_back(op); });
        const uint32_t e_id = *p.graph.find_tensor("e"), s_id = *p.graph.find_tensor("s");
        uint32_t loads = 0;
        for (const DfxOp& op : ops) {
            if (op.kind != DfxOpKind::Load || op.tensor != s_id) continue;
            ++loads;
            bool waits = false;
            for (uint32_t d : op.deps) waits |= ops[d].kind == DfxOpKind::Store && ops[d].tensor == e_id;
            EXPECT_TRUE(waits) << "LOAD " << op.id;
        }
        EXPECT_GT(loads, 0u);
        EXPECT_EQ(read_kpu(write_kpu(p), "t.kpu"), p);
    }
}

// An output that is a view of an input or of another output gets that tensor's address.
TEST(ViewLowering, AnOutputViewOfAnInputOrOutputSharesItsBuffer) {
    const std::string text = R"({"tensors": [{"name": "x", "shape": [2, 6], "role": "input"}, {"name": "v", "role": "output"},
        {"name": "y", "role": "output"}, {"name": "z", "role": "output"}],
      "ops": [{"op": "Flatten", "name": "fl", "inputs": ["x"], "outputs": ["v"], "attributes": {"axis": 0}},
              {"op": "Relu", "name": "re", "inputs": ["x"], "outputs": ["y"]},
              {"op": "Flatten", "name": "fy", "inputs": ["y"], "outputs": ["z"], "attributes": {"axis": 0}}]})";
    const hw::Config edge = test::config("edge");
    const Program p = compile(parse_graph(text, "t.json"), edge);
    ASSERT_EQ(p.kernels.size(), 1u);
    const BoundProgram b = bind(p, edge);
    EXPECT_EQ(bound_tensor(b, "v").dram_addr, bound_tensor(b, "x").dram_addr);
    EXPECT_EQ(bound_tensor(b, "z").dram_addr, bound_tensor(b, "y").dram_addr);
    EXPECT_EQ(bound_tensor(b, "z").shape, (std::vector<uint64_t>{1, 12}));
    EXPECT_EQ(read_kpu(write_kpu(p), "t.kpu"), p);
}

// A shape that is not an inline constant is refused with the reason.
TEST(ViewLowering, AShapeWithoutAnInlineValueIsRefused) {
    const std::string text = R"({"tensors": [{"name": "x", "shape": [2, 6], "role": "input"},
        {"name": "s", "shape": [2], "dtype": "int64", "role": "input"}, {"name": "y"}],
      "ops": [{"op": "Reshape", "name": "rs", "inputs": ["x", "s"], "outputs": ["y"]}]})";
    EXPECT_EQ(test::error_of([&] { parse_graph(text, "t.json"); }),
              "t.json: op 'rs' (Reshape): input 'shape' ('s') needs inline integer values (\"value\": [...]) for its "
              "shape to be known");
    // Only float32 data lowers (a view of int64 data is refused like any op's); the int64 shape passes.
    const std::string int_data = R"({"tensors": [{"name": "x", "shape": [2, 6], "dtype": "int64", "role": "input"},
        {"name": "s", "dtype": "int64", "role": "constant", "value": [-1]}, {"name": "y"}],
      "ops": [{"op": "Reshape", "name": "rs", "inputs": ["x", "s"], "outputs": ["y"]}]})";
    EXPECT_EQ(test::error_of([&] { compile(parse_graph(int_data, "t.json"), test::config("edge")); }),
              "graph: Unsupported operators: Reshape (rs: tensor 'x' is int64, not yet supported)");
}

// A .kpu's kernels are the ops that are not views; one for a view is refused.
TEST(ViewLowering, AKpuWithAKernelPerViewIsRejected) {
    const hw::Config edge = test::config("edge");
    const Program p = compile(parse_graph(kChain, "t.json"), edge);
    Program extra = p;
    extra.kernels.push_back(p.kernels[1]);
    const std::string error = test::error_of([&] { read_kpu(write_kpu(extra), "t.kpu"); });
    EXPECT_NE(error.find("kernels: 3 kernels for 2 graph ops that are not views (one per op expected)"), std::string::npos)
        << error;
}

}  // namespace
}  // namespace kpu::compiler
