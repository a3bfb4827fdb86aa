// Element types through the compiler (docs/compiler.md, "Element types"): the same GEMM and
// convolution in float32, bfloat16 and int8 move DRAM bytes by their element sizes (the
// closed form, the hints and the bound program's transfers), the bound commands carry the
// tensors' types and zero points, the requantization multipliers are the plain double
// computation rounded once, and what does not lower or does not fit the config is refused.
#include <gtest/gtest.h>

#include <cstring>
#include <string>

#include "compiler/layout_pass.h"
#include "compiler/ops/matmul.h"
#include "compiler/ops/op_schema.h"
#include "compiler/requantize.h"
#include "compiler/tiler.h"
#include "tests/compiler/test_util.h"

namespace kpu::compiler {
namespace {

using test::config;

std::string n(uint64_t v) { return std::to_string(v); }

std::string quant(const std::string& scale, const std::string& zero) {
    return R"(, "quant": {"scale": [)" + scale + R"(], "zero_point": [)" + zero + R"(], "axis": 0})";
}

/// y[m, n] = x[m, k] @ w[k, n] of `type` (int8: x and w quantized, y int8 with quantization).
std::string gemm_json(uint64_t m, uint64_t k, uint64_t nn, const std::string& type) {
    const bool q = type == "int8";
    return R"({"tensors": [{"name": "x", "shape": [)" + n(m) + ", " + n(k) + R"(], "dtype": ")" + type +
           R"(", "role": "input")" + (q ? quant("0.05", "3") : "") + R"(}, {"name": "w", "shape": [)" + n(k) + ", " +
           n(nn) + R"(], "dtype": ")" + type + R"(", "role": "input")" + (q ? quant("0.02", "-2") : "") +
           R"(}, {"name": "y", "dtype": ")" + type + R"(", "role": "output")" + (q ? quant("0.1", "-5") : "") +
           R"(}], "ops": [{"op": "matmul", "name": "mm", "A": "x", "B": "w", "C": "y"}]})";
}

/// A 3x3 convolution of `type`, NCHW as ONNX has it (int8: per-channel weights).
std::string conv_json(const std::string& type) {
    const bool q = type == "int8";
    return R"({"tensors": [{"name": "x", "shape": [1, 5, 9, 11], "dtype": ")" + type + R"(", "role": "input")" +
           (q ? quant("0.05", "7") : "") + R"(}, {"name": "w", "shape": [6, 5, 3, 3], "dtype": ")" + type +
           R"(", "role": "input")" +
           (q ? quant("0.01, 0.02, 0.03, 0.04, 0.05, 0.06", "0, 0, 0, 0, 0, 0") : "") +
           R"(}, {"name": "y", "dtype": ")" + type + R"(", "role": "output")" + (q ? quant("0.2", "-3") : "") +
           R"(}], "ops": [{"op": "Conv", "name": "conv", "inputs": ["x", "w"], "outputs": ["y"],
               "attributes": {"group": 1, "pads": [1, 1, 1, 1]}}]})";
}

/// The graph as compile() lowers it: checked, quantized kernels with their multipliers.
Graph lowered(const std::string& text) {
    const Graph g = sink_transposes(expand_composites(parse_graph(text, "t.json"), "t.json"));
    require_lowerable(g, "t.json");
    return add_requantization(g, nullptr);
}

/// DRAM bytes of one matmul-family kernel with `choice`: A once per task column, B once per
/// task row, C once, the scale row once per task row (docs/compiler.md, "Element types").
struct Traffic {
    uint64_t operands = 0, scale = 0;
};
Traffic closed_form(const Program& p) {
    const MatmulOperands mm = matmul_operands(p.graph, p.kernels.at(0).op);
    Traffic t;
    for (const Task& task : p.tasks) {
        const TileShape& s = p.kernels[0].tile;
        const uint64_t r0 = task.r0 * s.tm, r1 = std::min<uint64_t>(mm.m, task.r1 * uint64_t(s.tm));
        const uint64_t c0 = task.c0 * s.tn, c1 = std::min<uint64_t>(mm.n, task.c1 * uint64_t(s.tn));
        const uint64_t a = mm.conv ? mm.conv->region(r0, r1).count * mm.conv->w * mm.conv->cg : (r1 - r0) * mm.k;
        t.operands += dtype_bytes(mm.a_type) * a + dtype_bytes(mm.b_type) * mm.k * (c1 - c0) +
                      dtype_bytes(mm.c_type) * (r1 - r0) * (c1 - c0);
        if (mm.scale) t.scale += dtype_bytes(mm.scale_type) * (c1 - c0);
    }
    return t;
}

/// The program of matmul-family op `op` of each type's graph with one tiling (float32's).
std::vector<Program> same_tiling(const std::vector<Graph>& graphs, const std::string& op, const hw::Config& c) {
    const uint32_t index = *graphs[0].find_op(op);
    const TilingChoice choice = choose_tiling(c, graphs[0], index, Dataflow::OutputStationary);
    std::vector<Program> out;
    for (const Graph& g : graphs)
        out.push_back(tiling_program(c, g, *g.find_op(op), Dataflow::OutputStationary, choice));
    return out;
}

TEST(ElementTypes, GemmMovesDramBytesByElementSize) {
    const hw::Config edge = config("edge");
    for (const auto& [m, k, nn] : {std::tuple<uint64_t, uint64_t, uint64_t>{70, 200, 90}, {33, 17, 129}, {256, 512, 64}}) {
        SCOPED_TRACE("GEMM " + n(m) + "x" + n(nn) + "x" + n(k));
        const std::vector<Program> p =
            same_tiling({lowered(gemm_json(m, k, nn, "float32")), lowered(gemm_json(m, k, nn, "bfloat16")),
                         lowered(gemm_json(m, k, nn, "int8"))},
                        "mm", edge);
        Traffic t[3];
        for (int i = 0; i < 3; ++i) {
            t[i] = closed_form(p[i]);
            const BoundProgram b = bind(p[i], edge);
            EXPECT_EQ(p[i].hints.dram_read_bytes + p[i].hints.dram_write_bytes, t[i].operands + t[i].scale);
            EXPECT_EQ(b.dram_read_bytes, p[i].hints.dram_read_bytes);
            EXPECT_EQ(b.dram_write_bytes, p[i].hints.dram_write_bytes);
            EXPECT_EQ(b.dram_write_bytes, m * nn * uint64_t(4 >> i));  // C once, in its element type
        }
        EXPECT_EQ(t[0].operands, 2 * t[1].operands);
        EXPECT_EQ(t[0].operands, 4 * t[2].operands);
        EXPECT_EQ(t[0].scale + t[1].scale, 0u);
        EXPECT_GT(t[2].scale, 0u);  // the int8 kernel's multipliers, float32 per column
    }
}

TEST(ElementTypes, ConvMovesDramBytesByElementSize) {
    const hw::Config edge = config("edge");
    std::vector<Graph> graphs;
    for (const char* type : {"float32", "bfloat16", "int8"}) graphs.push_back(lowered(conv_json(type)));
    const std::vector<Program> p = same_tiling(graphs, "conv.conv", edge);
    Traffic t[3];
    for (int i = 0; i < 3; ++i) {
        t[i] = closed_form(p[i]);
        EXPECT_EQ(p[i].hints.dram_read_bytes + p[i].hints.dram_write_bytes, t[i].operands + t[i].scale);
        const BoundProgram b = bind(p[i], edge);
        EXPECT_EQ(b.dram_read_bytes + b.dram_write_bytes, t[i].operands + t[i].scale);
    }
    EXPECT_EQ(t[0].operands, 2 * t[1].operands);
    EXPECT_EQ(t[0].operands, 4 * t[2].operands);
}

TEST(ElementTypes, CompiledProgramsAreConsistent) {
    const hw::Config edge = config("edge");
    for (const std::string& text : {gemm_json(70, 200, 90, "int8"), gemm_json(70, 200, 90, "bfloat16"),
                                    conv_json("int8"), conv_json("bfloat16")}) {
        const Program p = compile(parse_graph(text, "t.json"), edge);
        test::expect_consistent(p, edge);
    }
}

TEST(ElementTypes, BoundCommandsCarryTypesAndZeroPoints) {
    const hw::Config edge = config("edge");
    const BoundProgram q = bind(compile(parse_graph(gemm_json(70, 200, 90, "int8"), "t.json"), edge), edge);
    uint32_t matmuls = 0, drains = 0;
    for (const BoundOp& op : q.ops) {
        if (op.kind == BoundOp::Kind::Matmul) {
            ++matmuls;
            EXPECT_EQ(op.matmul.type, DType::Int8);
            EXPECT_EQ(op.matmul.a_zero, 3);
            EXPECT_EQ(op.matmul.b_zero, -2);
            EXPECT_FALSE(op.matmul.load_c);  // one K pass: no partial sums in int8
        }
        if (op.kind == BoundOp::Kind::Drain) {
            ++drains;
            EXPECT_EQ(op.drain.out_type, DType::Int8);
            EXPECT_EQ(op.drain.out_zero, -5);
            EXPECT_TRUE(op.drain.has_scale);
        }
    }
    EXPECT_GT(matmuls, 0u);
    EXPECT_EQ(drains, matmuls);
    const BoundProgram h = bind(compile(parse_graph(gemm_json(70, 200, 90, "bfloat16"), "t.json"), edge), edge);
    for (const BoundOp& op : h.ops) {
        if (op.kind == BoundOp::Kind::Matmul) {
            EXPECT_EQ(op.matmul.type, DType::BFloat16);
        }
        if (op.kind == BoundOp::Kind::Drain) {
            EXPECT_EQ(op.drain.out_type, DType::BFloat16);
            EXPECT_FALSE(op.drain.has_scale);
        }
    }
}

TEST(ElementTypes, ConvGatherFillsWithTheInputZeroPoint) {
    const hw::Config edge = config("edge");
    const BoundProgram b = bind(compile(parse_graph(conv_json("int8"), "t.json"), edge), edge);
    uint32_t gathers = 0;
    for (const BoundOp& op : b.ops)
        if (op.kind == BoundOp::Kind::Move && !op.move.plain()) {
            ++gathers;
            EXPECT_EQ(op.move.fill, uint8_t(7));
        }
    EXPECT_GT(gathers, 0u);
    const BoundProgram f = bind(compile(parse_graph(conv_json("float32"), "t.json"), edge), edge);
    for (const BoundOp& op : f.ops) {
        if (op.kind == BoundOp::Kind::Move) {
            EXPECT_EQ(op.move.fill, 0);
        }
    }
}

TEST(ElementTypes, VectorOperandsCarryEncodings) {
    const hw::Config edge = config("edge");
    const std::string text =
        R"({"tensors": [{"name": "x", "shape": [40, 24], "dtype": "int8", "role": "input")" + quant("0.5", "-4") +
        R"(}, {"name": "y", "dtype": "int8", "role": "output")" + quant("0.25", "9") +
        R"(}], "ops": [{"op": "Relu", "name": "r", "inputs": ["x"], "outputs": ["y"]}]})";
    const Program p = compile(parse_graph(text, "t.json"), edge);
    EXPECT_EQ(p.hints.dram_read_bytes, 40u * 24u);
    EXPECT_EQ(p.hints.dram_write_bytes, 40u * 24u);
    const BoundProgram b = test::expect_consistent(p, edge);
    uint32_t vectors = 0;
    for (const BoundOp& op : b.ops)
        if (op.kind == BoundOp::Kind::Vector) {
            ++vectors;
            EXPECT_EQ(op.vector.a.encoding, (hw::Encoding{DType::Int8, 0.5f, -4}));
            EXPECT_EQ(op.vector.y.encoding, (hw::Encoding{DType::Int8, 0.25f, 9}));
        }
    EXPECT_GT(vectors, 0u);
}

TEST(ElementTypes, RequantizationMultipliersArePlainDoubleRoundedOnce) {
    const Graph g = lowered(conv_json("int8"));
    const Op& conv = g.ops()[*g.find_op("conv.conv")];
    const Tensor& m = g.tensor(conv.inputs.at(3));
    ASSERT_EQ(m.dtype, DType::Float32);
    ASSERT_EQ(m.shape, (std::vector<uint64_t>{1, 6}));
    const std::vector<double>& values = std::get<std::vector<double>>(m.value);
    const float w_scales[6] = {0.01f, 0.02f, 0.03f, 0.04f, 0.05f, 0.06f};
    for (int c = 0; c < 6; ++c) {
        const float want = float(double(0.05f) * double(w_scales[c]) / double(0.2f));
        EXPECT_EQ(float(values[c]), want) << "channel " << c;
        EXPECT_EQ(requantization_multiplier(0.05f, w_scales[c], 0.2f), want);
    }
    // A float32 C (no quantization): s_c = 1, the dequantized sum.
    std::string text = gemm_json(8, 8, 8, "int8");
    const std::string c_decl = R"({"name": "y", "dtype": "int8", "role": "output")" + quant("0.1", "-5") + "}";
    text.replace(text.find(c_decl), c_decl.size(), R"({"name": "y", "dtype": "float32", "role": "output"})");
    const Graph f = lowered(text);
    const Tensor& mf = f.tensor(f.ops()[*f.find_op("mm")].inputs.at(3));
    for (double v : std::get<std::vector<double>>(mf.value)) EXPECT_EQ(float(v), float(double(0.05f) * double(0.02f)));
}

TEST(ElementTypes, OneKPassForTypedAccumulators) {
    // K so long that float32 on edge takes it in passes (partial sums back to L3 between
    // them); int8 and bfloat16 C cannot hold partial sums: refused, saying why.
    const hw::Config edge = config("edge");
    const uint64_t k = 65536;
    const Program f = compile(parse_graph(gemm_json(64, k, 64, "float32"), "t.json"), edge);
    ASSERT_LT(f.kernels.at(0).tile.pass_k(k), k);
    for (const char* type : {"bfloat16", "int8"}) {
        try {
            compile(parse_graph(gemm_json(64, k, 64, type), "t.json"), edge);
            ADD_FAILURE() << type << " compiled";
        } catch (const CompileError& e) {
            EXPECT_NE(std::string(e.what()).find(std::string("its ") + type + " C from " + type +
                                                 " operands takes all of K in one pass"),
                      std::string::npos)
                << e.what();
        }
    }
    // Where one pass fits, it is taken.
    for (const char* type : {"bfloat16", "int8"}) {
        const Program p = compile(parse_graph(gemm_json(64, 2048, 64, type), "t.json"), edge);
        EXPECT_EQ(p.kernels.at(0).tile.pass_k(2048), 2048u) << type;
    }
}

TEST(ElementTypes, Refusals) {
    const hw::Config edge = config("edge");  // float32, bfloat16, int8
    const auto error = [&](const std::string& text) {
        try {
            compile(parse_graph(text, "t.json"), edge);
        } catch (const CompileError& e) {
            return std::string(e.what());
        }
        return std::string("(compiled)");
    };
    EXPECT_EQ(error(gemm_json(16, 16, 16, "float16")),
              "op 'mm' (matmul): element type 'float16' is not supported by config 'edge' (float32, bfloat16, int8)");
    // int8 A without quantization.
    std::string text = gemm_json(16, 16, 16, "int8");
    text.replace(text.find(quant("0.05", "3")), quant("0.05", "3").size(), "");
    EXPECT_EQ(error(text),
              "t.json: op 'mm' (matmul): input 'A' ('x', [16, 16]) is int8 without quantization (its scale and zero point)");
    // Per-channel A.
    text = gemm_json(2, 16, 16, "int8");
    text.replace(text.find(quant("0.05", "3")), quant("0.05", "3").size(), quant("0.05, 0.06", "3, 3"));
    EXPECT_NE(error(text).find("is quantized per channel (2 scales): A must be quantized per tensor"), std::string::npos)
        << error(text);
    // A float32 bias of an int8 product.
    const std::string with_bias =
        R"({"tensors": [{"name": "x", "shape": [4, 4], "dtype": "int8", "role": "input")" + quant("1", "0") +
        R"(}, {"name": "w", "shape": [4, 4], "dtype": "int8", "role": "input")" + quant("1", "0") +
        R"(}, {"name": "b", "shape": [4], "dtype": "float32", "role": "input"}, {"name": "y", "role": "output"}],
            "ops": [{"op": "matmul", "name": "mm", "A": "x", "B": "w", "bias": "b", "C": "y"}]})";
    EXPECT_NE(error(with_bias).find("input 'bias' ('b') is float32, expected int32"), std::string::npos)
        << error(with_bias);
    // A sigmoid into an int8 C.
    std::string sigmoid = gemm_json(16, 16, 16, "int8");
    sigmoid.replace(sigmoid.find(R"("C": "y"})"), 9, R"("C": "y", "activation": "sigmoid"})");
    EXPECT_NE(error(sigmoid).find("attribute 'activation' is 'sigmoid' but output 'y' is int8: only 'none' and 'relu'"),
              std::string::npos)
        << error(sigmoid);
}

}  // namespace
}  // namespace kpu::compiler
