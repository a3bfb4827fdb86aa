#include "compiler/graph.h"

#include <gtest/gtest.h>

#include "compiler/binder.h"
#include "compiler/generate.h"
#include "compiler/graph_json.h"
#include "compiler/ops/matmul.h"
#include "tests/compiler/test_util.h"

namespace kpu::compiler {
namespace {

using test::error_of;

TEST(GraphImport, AcceptsTheSeedSingleOpFormVerbatim) {
    Graph g = parse_graph(
        R"({"op": "matmul", "A": {"shape": [1024, 512], "dtype": "float32"}, "B": {"shape": [512, 1024], "dtype": "float32"}, "C": {"shape": [1024, 1024], "dtype": "float32"}})",
        "seed.json");
    ASSERT_EQ(g.ops().size(), 1u);
    const MatmulOperands mm = matmul_operands(g, 0);
    EXPECT_EQ(mm.m, 1024u);
    EXPECT_EQ(mm.n, 1024u);
    EXPECT_EQ(mm.k, 512u);
    EXPECT_EQ(g.tensor(mm.a).role, TensorRole::Input);
    EXPECT_EQ(g.tensor(mm.c).role, TensorRole::Output);
}

TEST(GraphImport, MultiOpMlpInfersShapesAndRoles) {
    Graph g = parse_graph(test::mlp_json(64, 256, 512, 128), "mlp.json");
    ASSERT_EQ(g.ops().size(), 2u);
    const Tensor& h = g.tensor(*g.find_tensor("h"));
    EXPECT_EQ(h.shape, (std::vector<uint64_t>{64, 512}));
    EXPECT_EQ(h.role, TensorRole::Intermediate);
    EXPECT_EQ(g.tensor(*g.find_tensor("y")).shape, (std::vector<uint64_t>{64, 128}));
    EXPECT_EQ(g.tensor(*g.find_tensor("y")).role, TensorRole::Output);
    EXPECT_EQ(matmul_operands(g, 0).activation, Activation::Relu);
    EXPECT_TRUE(matmul_operands(g, 1).bias.has_value());
}

TEST(GraphImport, OrdersOpsTopologically) {
    Graph g = parse_graph(R"({"tensors": [{"name": "x", "shape": [4, 4]}, {"name": "h"}, {"name": "y"}],
        "ops": [{"op": "matmul", "name": "second", "A": "h", "B": "x", "C": "y"},
                {"op": "matmul", "name": "first", "A": "x", "B": "x", "C": "h"}]})",
                          "g.json");
    EXPECT_EQ(g.ops()[0].name, "first");
    EXPECT_EQ(g.ops()[1].name, "second");
}

TEST(GraphImport, RoundTripsThroughTheMultiOpForm) {
    Graph g = parse_graph(test::mlp_json(8, 16, 32, 4), "mlp.json");
    Graph again = graph_from_json(graph_to_json(g), "", "again.json");
    EXPECT_EQ(g, again);
}

TEST(GraphErrors, InnerDimensionMismatchNamesOpTensorsDimensionsAndNumbers) {
    std::string e = error_of([] {
        parse_graph(R"({"op": "matmul", "A": {"shape": [4, 5]}, "B": {"shape": [4, 4]}, "C": {"shape": [4, 4]}})",
                    "bad.json");
    });
    EXPECT_NE(e.find("bad.json: op 'matmul' (matmul): A 'A' dimension 1 is 5 but B 'B' dimension 0 is 4"),
              std::string::npos)
        << e;
}

TEST(GraphErrors, OutputShapeMismatchNamesTheDimension) {
    std::string e = error_of([] {
        parse_graph(R"({"op": "matmul", "A": {"shape": [8, 4]}, "B": {"shape": [4, 6]}, "C": {"shape": [8, 7]}})",
                    "bad.json");
    });
    EXPECT_NE(e.find("C 'C' dimension 1 is 7 but B 'B' dimension 1 is 6"), std::string::npos) << e;
}

TEST(GraphErrors, BiasMustMatchN) {
    std::string e = error_of([] {
        parse_graph(
            R"({"op": "matmul", "A": {"shape": [8, 4]}, "B": {"shape": [4, 6]}, "C": {"shape": [8, 6]}, "bias": {"shape": [5]}})",
            "bad.json");
    });
    EXPECT_NE(e.find("bias 'bias' dimension 0 is 5 but B 'B' dimension 1 is 6"), std::string::npos) << e;
}

TEST(GraphErrors, EachBadInputGetsAPreciseMessage) {
    struct Case {
        const char* text;
        const char* expected;
    };
    const Case cases[] = {
        {"{\"op\": ", "bad.json: malformed JSON: parse error at line 1, column 8"},
        {R"({"op": "conv2d", "A": {"shape": [1, 1]}})", "bad.json: op: unknown op 'conv2d'"},
        {R"({"op": "matmul", "A": {"shape": [2, 2], "strides": [1]}, "B": {"shape": [2, 2]}, "C": {"shape": [2, 2]}})",
         "bad.json: A.strides: unknown field"},
        // A typo gets the suggestion the config loader gives.
        {R"({"tensors": [{"name": "x", "shape": [2, 2]}, {"name": "y"}],
             "ops": [{"op": "matmul", "A": "x", "B": "x", "C": "y", "activaton": "relu"}]})",
         "bad.json: ops[0].activaton: unknown field (did you mean 'activation'?)"},
        {R"({"op": "matmul", "A": {"shape": [1e400, 1]}, "B": {"shape": [1, 1]}, "C": {"shape": [1, 1]}})",
         "bad.json: malformed JSON: number overflow parsing '1e400'"},
        {R"({"op": "matmul", "A": {"shape": [4294967295, 1]}, "B": {"shape": [1, 4294967295]}, "C": {"shape": [4294967295, 4294967295]}})",
         "bad.json: tensor 'C': shape [4294967295, 4294967295] is more than 1 TiB of float32 (the DRAM address window of "
         "any config)"},
        {R"({"op": "matmul", "A": {"shape": [2, 2], "dtype": "int8"}, "B": {"shape": [2, 2]}, "C": {"shape": [2, 2]}})",
         "bad.json: op 'matmul' (matmul): input 'B' ('B') is float32 but input 'A' ('A') is int8"},
        {R"({"op": "matmul", "A": {"shape": [2, 2], "dtype": "int4"}, "B": {"shape": [2, 2]}, "C": {"shape": [2, 2]}})",
         "bad.json: A.dtype: unknown dtype 'int4' (float32, float16, bfloat16, int8, int32, int64)"},
        {R"({"op": "matmul", "A": {"shape": [2, 0]}, "B": {"shape": [2, 2]}, "C": {"shape": [2, 2]}})",
         "bad.json: A.shape[1]: dimension is 0"},
        {R"({"op": "matmul", "A": {"shape": [2, "x"]}, "B": {"shape": [2, 2]}, "C": {"shape": [2, 2]}})",
         "bad.json: A.shape[1]: expected a non-negative integer"},
        {R"({"op": "matmul", "A": {"shape": [2, 2, 2]}, "B": {"shape": [2, 2]}, "C": {"shape": [2, 2]}})",
         "A 'A' has shape [2, 2, 2], expected rank 2"},
        {R"({"op": "matmul", "A": {"shape": [2, 2]}, "B": {"shape": [2, 2]}})", "bad.json: C: missing required field"},
        {R"({"tensors": [{"name": "x", "shape": [2, 2]}], "ops": [{"op": "matmul", "A": "x", "B": "w", "C": "y"}]})",
         "bad.json: ops[0].B: unknown tensor 'w'"},
        // Names become file names (<name>.npy): "../escaped" would write outside --outputs.
        {R"({"tensors": [{"name": "x", "shape": [2, 2]}, {"name": "../escaped"}], "ops": []})",
         "bad.json: tensors[1].name: tensor name '../escaped' has a '/' or '\\' (outputs are written as <name>.npy)"},
        {R"({"tensors": [{"name": ".."}], "ops": []})",
         "bad.json: tensors[0].name: tensor name '..' is not a file name (outputs are written as <name>.npy)"},
        {R"({"tensors": [{"name": "a\nb"}], "ops": []})", "bad.json: tensors[0].name: tensor name has a control character"},
        {R"({"tensors": [{"name": "x", "shape": [2, 2]}, {"name": "y"}, {"name": "z"}],
             "ops": [{"op": "matmul", "name": "p", "A": "z", "B": "x", "C": "y"},
                     {"op": "matmul", "name": "q", "A": "y", "B": "x", "C": "z"}]})",
         "bad.json: the graph has a cycle: 'p' -> 'q' -> 'p'"},
        {R"({"tensors": [{"name": "x", "shape": [2, 2]}, {"name": "y", "role": "input"}],
             "ops": [{"op": "matmul", "A": "x", "B": "x", "C": "y"}]})",
         "tensor 'y' has role 'input' but an op produces it"},
        // Both forms in one file: named as such, not as "tensors: unknown field".
        {R"({"op": "matmul", "A": {"shape": [2, 2]}, "B": {"shape": [2, 2]}, "C": {"shape": [2, 2]}, "tensors": []})",
         "bad.json: has both \"op\" (the single-op form) and \"tensors\" (the multi-op form): a graph is one or the "
         "other (docs/graph-format.md)"},
        // A final result declared intermediate is refused: compiled, --check would check nothing.
        {R"({"tensors": [{"name": "x", "shape": [2, 2]}, {"name": "y", "role": "intermediate"}],
             "ops": [{"op": "matmul", "A": "x", "B": "x", "C": "y"}]})",
         "tensor 'y' has role 'intermediate' but no op reads it (a result no op reads is an output)"},
        {R"({"tensors": [{"name": "x"}, {"name": "y"}], "ops": [{"op": "matmul", "A": "x", "B": "x", "C": "y"}]})",
         "tensor 'x': no shape given and no op produces it"},
        {R"({"tensors": [{"name": "x", "shape": [2, 2]}, {"name": "y"}, {"name": "u", "shape": [3]}],
             "ops": [{"op": "matmul", "A": "x", "B": "x", "C": "y"}]})",
         "tensor 'u' is not used by any op"},
        {R"({"tensors": [{"name": "x", "shape": [2, 2]}, {"name": "y"}],
             "ops": [{"op": "matmul", "A": "x", "B": "x", "C": "y", "activation": "swish"}]})",
         "bad.json: ops[0].activation: unknown activation 'swish' (none, relu, gelu, gelu_erf, sigmoid, silu, tanh)"},
    };
    for (const Case& c : cases) {
        SCOPED_TRACE(c.text);
        std::string e = error_of([&] { parse_graph(c.text, "bad.json"); });
        EXPECT_NE(e.find(c.expected), std::string::npos) << e;
        EXPECT_EQ(e.find('\n'), std::string::npos);
    }
    // Nested 100000 deep: the error path must not overflow the stack quoting the value.
    EXPECT_EQ(error_of([] { parse_graph("{\"op\": " + std::string(100000, '['), "bad.json"); }),
              "bad.json: malformed JSON: nested deeper than 64 levels at byte 70");
}

// An op without a name is called matmul<its index> in C++ as in JSON (one rule, in
// Graph::add_op), and a JSON name that clashes with such a default gets a message saying it.
TEST(GraphApi, OpsWithoutANameAreCalledMatmulAndTheirIndexInBothForms) {
    Graph g;
    const uint32_t x = g.add_tensor({"x", {8, 8}, DType::Float32, std::nullopt});
    const uint32_t y = g.add_tensor({"y", {}, DType::Float32, std::nullopt});
    const uint32_t z = g.add_tensor({"z", {}, DType::Float32, std::nullopt});
    g.add_op(make_matmul("", x, x, y));
    g.add_op(make_matmul("", x, x, z));
    EXPECT_EQ(g.ops()[0].name, "matmul0");
    EXPECT_EQ(g.ops()[1].name, "matmul1");
    const std::string clash = R"({"tensors": [{"name": "x", "shape": [4, 4]}, {"name": "a"}, {"name": "b"}],
        "ops": [{"op": "matmul", "A": "a", "B": "x", "C": "b"},
                {"op": "matmul", "name": "matmul0", "A": "x", "B": "x", "C": "a"}]})";
    EXPECT_EQ(test::error_of([&] { parse_graph(clash, "clash.json"); }),
              "clash.json: ops[1].name: op 'matmul0' is declared twice (an op without a name is called matmul<its "
              "index>)");
}

// A graph built in C++ may reach compile() without check() (shapes left to inference, ops
// consumer-first, roles unset): compile() checks a copy itself, and add_op refuses an op
// naming a tensor index that does not exist.
TEST(GraphApi, CompileChecksAGraphBuiltInCppItself) {
    Graph g;
    const uint32_t x = g.add_tensor({"x", {64, 32}, DType::Float32, std::nullopt});
    const uint32_t w1 = g.add_tensor({"w1", {32, 48}, DType::Float32, std::nullopt});
    const uint32_t h = g.add_tensor({"h", {}, DType::Float32, std::nullopt});
    const uint32_t w2 = g.add_tensor({"w2", {48, 16}, DType::Float32, std::nullopt});
    const uint32_t y = g.add_tensor({"y", {}, DType::Float32, std::nullopt});
    g.add_op(make_matmul("fc2", h, w2, y));  // consumer first
    g.add_op(make_matmul("fc1", x, w1, h));
    const Program program = compile(g, test::config("minimal"), test::unfused());
    EXPECT_EQ(program.graph.ops()[0].name, "fc1") << "check() orders the ops: add_op's index 0 was fc2";
    EXPECT_EQ(*program.graph.find_op("fc2"), 1u);
    EXPECT_EQ(program.graph.tensor(4).shape, (std::vector<uint64_t>{64, 16}));
    EXPECT_EQ(program.graph.tensor(4).role, TensorRole::Output);
    EXPECT_EQ(bind(program, test::config("edge")).tensors.size(), 5u);

    Graph bad;
    const uint32_t a = bad.add_tensor({"a", {8, 8}, DType::Float32, std::nullopt});
    const Op op = make_matmul("mm", a, 7, 9);
    EXPECT_EQ(test::error_of([&] { bad.add_op(op); }), "op 'mm': B is tensor 7 but the graph has 1 tensors");
    Graph mismatch;
    const uint32_t ma = mismatch.add_tensor({"A", {64, 32}, DType::Float32, std::nullopt});
    const uint32_t mb = mismatch.add_tensor({"B", {48, 64}, DType::Float32, std::nullopt});
    const uint32_t mc = mismatch.add_tensor({"C", {}, DType::Float32, std::nullopt});
    mismatch.add_op(make_matmul("mm", ma, mb, mc));
    EXPECT_EQ(test::error_of([&] { compile(mismatch, test::config("minimal")); })
                  .rfind("graph: op 'mm' (matmul): A 'A' dimension 1 is 32 but B 'B' dimension 0 is 48", 0),
              0u);
}

}  // namespace
}  // namespace kpu::compiler
