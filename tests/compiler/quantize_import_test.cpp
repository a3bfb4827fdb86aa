// Quantized ONNX models (docs/onnx.md, Quantization) built as ModelProtos here: what the
// importer makes of QuantizeLinear / DequantizeLinear / QLinearConv / QLinearMatMul / Cast (the
// ops, the int8 tensors' quant, the int8 and int32 weights' values, uint8 made int8), what
// fold-qdq folds, the element-type rules and the one-line refusals of bad input.
#include <gtest/gtest.h>
#include <onnx/onnx_pb.h>

#include <cmath>
#include <cstring>
#include <functional>
#include <limits>
#include <map>

#include "compiler/compile_error.h"
#include "compiler/graph_json.h"
#include "compiler/onnx_import.h"
#include "compiler/ops/op_schema.h"
#include "compiler/passes/fold_qdq.h"

namespace kpu::compiler {
namespace {

using onnx::TensorProto;

/// A ModelProto under construction (opset 13 unless told).
struct Model {
    onnx::ModelProto proto;
    onnx::GraphProto* graph;

    explicit Model(int64_t opset = 13) {
        proto.set_ir_version(8);
        auto* o = proto.add_opset_import();
        o->set_domain("");
        o->set_version(opset);
        graph = proto.mutable_graph();
        graph->set_name("quantized");
    }
    static void typed(onnx::ValueInfoProto* v, const std::string& name, int32_t type, const std::vector<int64_t>& dims) {
        v->set_name(name);
        auto* t = v->mutable_type()->mutable_tensor_type();
        t->set_elem_type(type);
        t->mutable_shape();  // a scalar's: rank 0
        for (int64_t d : dims) t->mutable_shape()->add_dim()->set_dim_value(d);
    }
    void input(const std::string& name, const std::vector<int64_t>& dims, int32_t type = TensorProto::FLOAT) {
        typed(graph->add_input(), name, type, dims);
    }
    void output(const std::string& name, const std::vector<int64_t>& dims, int32_t type = TensorProto::FLOAT) {
        typed(graph->add_output(), name, type, dims);
    }
    void floats(const std::string& name, const std::vector<int64_t>& dims, const std::vector<float>& values) {
        TensorProto* t = graph->add_initializer();
        t->set_name(name), t->set_data_type(TensorProto::FLOAT);
        for (int64_t d : dims) t->add_dims(d);
        for (float v : values) t->add_float_data(v);
    }
    /// int8, uint8 (raw bytes) or int32 values.
    void ints(const std::string& name, int32_t type, const std::vector<int64_t>& dims, const std::vector<int32_t>& values) {
        TensorProto* t = graph->add_initializer();
        t->set_name(name), t->set_data_type(type);
        for (int64_t d : dims) t->add_dims(d);
        std::string raw;
        for (int32_t v : values) {
            if (type == TensorProto::INT32) raw.append(reinterpret_cast<const char*>(&v), 4);
            else raw.push_back(char(uint8_t(v)));
        }
        t->set_raw_data(raw);
    }
    onnx::NodeProto* node(const std::string& kind, const std::string& name, const std::vector<std::string>& inputs,
                          const std::vector<std::string>& outputs) {
        onnx::NodeProto* n = graph->add_node();
        n->set_op_type(kind), n->set_name(name);
        for (const auto& i : inputs) n->add_input(i);
        for (const auto& o : outputs) n->add_output(o);
        return n;
    }
    static void attribute(onnx::NodeProto* n, const std::string& name, int64_t value) {
        auto* a = n->add_attribute();
        a->set_name(name), a->set_type(onnx::AttributeProto::INT), a->set_i(value);
    }
    ImportedModel import() const { return import_onnx_bytes(proto.SerializeAsString(), "q.onnx"); }
};

/// The message import() throws, "" when it imports.
std::string import_error(const Model& m) {
    try {
        m.import();
    } catch (const CompileError& e) {
        return e.what();
    }
    return "";
}

std::vector<std::string> kinds(const Graph& g) {
    std::vector<std::string> out;
    for (const Op& op : g.ops()) out.push_back(op.kind);
    return out;
}

const Tensor& named(const Graph& g, const std::string& name) { return g.tensor(*g.find_tensor(name)); }
const Op& op_named(const Graph& g, const std::string& name) { return g.ops()[*g.find_op(name)]; }

Quantization quant(std::vector<float> scale, std::vector<int32_t> zero_point, uint32_t axis = 0) {
    return {std::move(scale), std::move(zero_point), axis};
}

// x -> Q -> DQ -> Conv(DQ(W int8, per channel), DQ(B int32)) -> Relu -> Q -> DQ -> y: the QDQ
// form ONNX Runtime's quantizer writes for a conv.
Model qdq_conv(float bias_scale_factor = 1.0f) {
    Model m;
    m.input("x", {1, 2, 4, 4});
    m.output("y", {1, 3, 4, 4});
    m.floats("sx", {}, {0.05f}), m.ints("zx", TensorProto::INT8, {}, {3});
    m.floats("sw", {3}, {0.01f, 0.02f, 0.04f}), m.ints("zw", TensorProto::INT8, {3}, {0, 0, 0});
    std::vector<int32_t> w(3 * 2 * 3 * 3);
    for (size_t i = 0; i < w.size(); ++i) w[i] = int32_t(i * 7 % 255) - 127;
    m.ints("w", TensorProto::INT8, {3, 2, 3, 3}, w);
    m.floats("sb", {3}, {0.05f * 0.01f * bias_scale_factor, 0.05f * 0.02f, 0.05f * 0.04f});
    m.ints("zb", TensorProto::INT32, {3}, {0, 0, 0});
    m.ints("b", TensorProto::INT32, {3}, {100, -2000, 7});
    m.floats("sy", {}, {0.1f}), m.ints("zy", TensorProto::INT8, {}, {-5});
    m.node("QuantizeLinear", "qx", {"x", "sx", "zx"}, {"xq"});
    m.node("DequantizeLinear", "dqx", {"xq", "sx", "zx"}, {"xf"});
    Model::attribute(m.node("DequantizeLinear", "dqw", {"w", "sw", "zw"}, {"wf"}), "axis", 0);
    Model::attribute(m.node("DequantizeLinear", "dqb", {"b", "sb", "zb"}, {"bf"}), "axis", 0);
    Model::attribute(m.node("Conv", "conv", {"xf", "wf", "bf"}, {"c"}), "group", 1);
    auto* conv = m.graph->mutable_node(m.graph->node_size() - 1);
    auto* pads = conv->add_attribute();
    pads->set_name("pads"), pads->set_type(onnx::AttributeProto::INTS);
    for (int i = 0; i < 4; ++i) pads->add_ints(1);
    m.node("Relu", "relu", {"c"}, {"r"});
    m.node("QuantizeLinear", "qy", {"r", "sy", "zy"}, {"yq"});
    m.node("DequantizeLinear", "dqy", {"yq", "sy", "zy"}, {"y"});
    return m;
}

TEST(QuantizeImport, QdqConvImportsWithInt8TensorsAndWeights) {
    const ImportedModel im = qdq_conv().import();
    const Graph& g = im.graph;
    EXPECT_EQ(kinds(g), (std::vector<std::string>{"QuantizeLinear", "DequantizeLinear", "DequantizeLinear",
                                                  "DequantizeLinear", "Conv", "Relu", "QuantizeLinear",
                                                  "DequantizeLinear"}));
    const Tensor& xq = named(g, "xq");
    EXPECT_EQ(xq.dtype, DType::Int8);
    EXPECT_EQ(xq.quant, quant({0.05f}, {3}));
    const Tensor& w = named(g, "w");
    EXPECT_EQ(w.dtype, DType::Int8);
    EXPECT_EQ(w.role, TensorRole::Constant);
    EXPECT_EQ(w.quant, quant({0.01f, 0.02f, 0.04f}, {0, 0, 0}, 0));
    const Weight& ww = im.weights.at("w");
    EXPECT_EQ(ww.dtype, DType::Int8);
    EXPECT_TRUE(ww.values.empty());
    ASSERT_EQ(ww.integers.size(), 54u);
    for (size_t i = 0; i < ww.integers.size(); ++i) EXPECT_EQ(ww.integers[i], int32_t(i * 7 % 255) - 127) << i;
    const Weight& wb = im.weights.at("b");
    EXPECT_EQ(wb.dtype, DType::Int32);
    EXPECT_EQ(wb.integers, (std::vector<int32_t>{100, -2000, 7}));
    EXPECT_EQ(named(g, "b").quant, quant({0.05f * 0.01f, 0.05f * 0.02f, 0.05f * 0.04f}, {0, 0, 0}, 0));
    EXPECT_EQ(named(g, "xf").dtype, DType::Float32);
    EXPECT_EQ(named(g, "yq").quant, quant({0.1f}, {-5}));
    EXPECT_TRUE(op_named(g, "qx").inputs.size() == 1 && op_named(g, "qx").attributes.empty());
}

TEST(FoldQdq, ConvBetweenDequantizeAndQuantizeComputesOnInt8) {
    ImportedModel im = qdq_conv().import();
    std::vector<std::string> notes;
    const Graph g = fold_qdq(im.graph, &im.weights, &notes);
    EXPECT_EQ(kinds(g), (std::vector<std::string>{"QuantizeLinear", "Conv", "Relu", "DequantizeLinear"}));
    const Op& conv = op_named(g, "conv");
    ASSERT_EQ(conv.inputs.size(), 3u);
    EXPECT_EQ(g.tensor(conv.inputs[0]).name, "xq");
    EXPECT_EQ(g.tensor(conv.inputs[1]).name, "w");
    EXPECT_EQ(g.tensor(conv.inputs[2]).name, "b");  // its scale is s_x s_w[c]: read as it is
    const Tensor& c = g.tensor(conv.outputs[0]);
    EXPECT_EQ(c.name, "c");
    EXPECT_EQ(c.dtype, DType::Int8);
    EXPECT_EQ(c.quant, quant({0.1f}, {-5}));  // the result's: the Relu between keeps it
    const Op& relu = op_named(g, "relu");
    EXPECT_EQ(g.tensor(relu.outputs[0]).name, "yq");
    EXPECT_EQ(relu.fused_with, std::vector<std::string>{"qy"});
    EXPECT_FALSE(g.find_tensor("xf") || g.find_tensor("wf") || g.find_tensor("bf") || g.find_tensor("r"));
    EXPECT_EQ(named(g, "y").dtype, DType::Float32);
    ASSERT_FALSE(notes.empty());
    EXPECT_EQ(notes[0], "fold-qdq: op 'conv' (Conv) computes on int8 'xq' and 'w' (int32 bias 'b'), writing int8 "
                        "'c'; its Relu writes 'yq'");
}

// A bias dequantized at another scale than s_x s_w[c] is re-quantized there (round half even).
TEST(FoldQdq, ABiasAtAnotherScaleIsRequantizedToInt32) {
    ImportedModel im = qdq_conv(2.0f).import();  // channel 0's bias at twice s_x s_w[0]
    const Graph g = fold_qdq(im.graph, &im.weights, nullptr);
    const Op& conv = op_named(g, "conv");
    const Tensor& b = g.tensor(conv.inputs[2]);
    EXPECT_EQ(b.name, "conv.bias_int32");
    EXPECT_EQ(b.dtype, DType::Int32);
    EXPECT_EQ(b.quant, quant({0.05f * 0.01f, 0.05f * 0.02f, 0.05f * 0.04f}, {0, 0, 0}, 0));
    std::vector<int32_t> want;
    const float sb[3] = {0.05f * 0.01f * 2.0f, 0.05f * 0.02f, 0.05f * 0.04f};
    const float s[3] = {0.05f * 0.01f, 0.05f * 0.02f, 0.05f * 0.04f};
    const int32_t q[3] = {100, -2000, 7};
    for (int i = 0; i < 3; ++i) want.push_back(int32_t(std::nearbyint(double(float(q[i] * double(sb[i]))) / s[i])));
    EXPECT_EQ(want[0], 200);
    EXPECT_EQ(im.weights.at("conv.bias_int32").integers, want);
    EXPECT_EQ(im.weights.count("b"), 0u);  // no program weight any more
}

// Without a QuantizeLinear after, the conv writes its float32 output (dequantized).
TEST(FoldQdq, WithoutQuantizeAfterTheProductWritesFloat32) {
    Model m;
    m.input("a", {2, 4});
    m.output("y", {2, 3});
    m.floats("sa", {}, {0.5f}), m.ints("za", TensorProto::INT8, {}, {0});
    m.floats("sw", {}, {0.25f}), m.ints("zw", TensorProto::INT8, {}, {1});
    m.ints("w", TensorProto::INT8, {4, 3}, {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12});
    m.node("QuantizeLinear", "qa", {"a", "sa", "za"}, {"aq"});
    m.node("DequantizeLinear", "dqa", {"aq", "sa", "za"}, {"af"});
    m.node("DequantizeLinear", "dqw", {"w", "sw", "zw"}, {"wf"});
    m.node("MatMul", "mm", {"af", "wf"}, {"y"});
    ImportedModel im = m.import();
    const Graph g = fold_qdq(im.graph, &im.weights, nullptr);
    EXPECT_EQ(kinds(g), (std::vector<std::string>{"QuantizeLinear", "MatMul"}));
    EXPECT_EQ(named(g, "y").dtype, DType::Float32);
    EXPECT_EQ(g.tensor(op_named(g, "mm").inputs[1]).dtype, DType::Int8);
}

// DQ -> Add -> Q: Add on int8; Q(DQ(x)) with x's quant: x; a DQ other ops still read stays.
TEST(FoldQdq, VectorOpsReadAndWriteInt8AndRequantizationsGo) {
    Model m;
    m.input("a", {2, 8});
    m.input("b", {2, 8});
    m.output("y", {2, 8});
    m.output("z", {2, 8});
    m.floats("s", {}, {0.1f}), m.ints("zp", TensorProto::INT8, {}, {2});
    m.floats("s2", {}, {0.2f}), m.ints("zp2", TensorProto::INT8, {}, {-1});
    m.node("QuantizeLinear", "qa", {"a", "s", "zp"}, {"aq"});
    m.node("DequantizeLinear", "dqa", {"aq", "s", "zp"}, {"af"});
    m.node("QuantizeLinear", "again", {"af", "s", "zp"}, {"aq2"});  // (c)
    m.node("DequantizeLinear", "dqa2", {"aq2", "s", "zp"}, {"af2"});
    m.node("Add", "add", {"af2", "b"}, {"sum"});
    m.node("QuantizeLinear", "qs", {"sum", "s2", "zp2"}, {"sq"});
    m.node("DequantizeLinear", "dqs", {"sq", "s2", "zp2"}, {"y"});
    m.node("Sigmoid", "sig", {"af"}, {"z"});  // reads af too: folds as well, and the DQ goes
    ImportedModel im = m.import();
    const Graph g = fold_qdq(im.graph, &im.weights, nullptr);
    EXPECT_EQ(kinds(g), (std::vector<std::string>{"QuantizeLinear", "Add", "DequantizeLinear", "Sigmoid"}));
    const Op& add = op_named(g, "add");
    EXPECT_EQ(g.tensor(add.inputs[0]).name, "aq");
    EXPECT_EQ(g.tensor(add.inputs[1]).name, "b");
    EXPECT_EQ(g.tensor(add.outputs[0]).name, "sq");
    EXPECT_EQ(g.tensor(add.outputs[0]).dtype, DType::Int8);
    const Op& sig = op_named(g, "sig");
    EXPECT_EQ(g.tensor(sig.inputs[0]).name, "aq");
    EXPECT_EQ(named(g, "z").dtype, DType::Float32);
}

TEST(FoldQdq, ADequantizeAnotherOpStillReadsStays) {
    Model m;
    m.input("a", {2, 8});
    m.output("y", {2, 8});
    m.output("t", {8, 2});
    m.floats("s", {}, {0.1f}), m.ints("zp", TensorProto::INT8, {}, {0});
    m.node("QuantizeLinear", "qa", {"a", "s", "zp"}, {"aq"});
    m.node("DequantizeLinear", "dqa", {"aq", "s", "zp"}, {"af"});
    m.node("Relu", "relu", {"af"}, {"y"});
    m.node("Transpose", "tr", {"af"}, {"t"});  // not folded: reads the float af
    ImportedModel im = m.import();
    std::vector<std::string> notes;
    const Graph g = fold_qdq(im.graph, &im.weights, &notes);
    EXPECT_EQ(kinds(g), (std::vector<std::string>{"QuantizeLinear", "DequantizeLinear", "Relu", "Transpose"}));
    EXPECT_EQ(g.tensor(op_named(g, "relu").inputs[0]).name, "aq");
    EXPECT_EQ(g.tensor(op_named(g, "tr").inputs[0]).name, "af");
    EXPECT_EQ(notes, std::vector<std::string>{"fold-qdq: op 'relu' (Relu) reads int8 'aq'"});
}

// uint8 quantization becomes int8 exactly: q - 128, zero point - 128.
TEST(QuantizeImport, QLinearMatMulOfUint8BecomesMatMulOnInt8) {
    Model m;
    m.input("a", {2, 3});
    m.output("y", {2, 2});
    m.floats("sa", {}, {0.02f}), m.ints("za", TensorProto::UINT8, {}, {128});
    m.floats("sb", {2}, {0.5f, 0.25f}), m.ints("zb", TensorProto::UINT8, {2}, {130, 130});
    m.ints("b", TensorProto::UINT8, {3, 2}, {0, 255, 128, 1, 200, 7});
    m.floats("sy", {}, {0.3f}), m.ints("zy", TensorProto::UINT8, {}, {100});
    m.node("QuantizeLinear", "qa", {"a", "sa", "za"}, {"aq"});
    m.node("QLinearMatMul", "qmm", {"aq", "sa", "za", "b", "sb", "zb", "sy", "zy"}, {"yq"});
    m.node("DequantizeLinear", "dqy", {"yq", "sy", "zy"}, {"y"});
    const ImportedModel im = m.import();
    const Graph& g = im.graph;
    EXPECT_EQ(kinds(g), (std::vector<std::string>{"QuantizeLinear", "MatMul", "DequantizeLinear"}));
    EXPECT_EQ(named(g, "aq").quant, quant({0.02f}, {0}));
    EXPECT_EQ(named(g, "b").quant, quant({0.5f, 0.25f}, {2, 2}, 1));
    EXPECT_EQ(im.weights.at("b").integers, (std::vector<int32_t>{-128, 127, 0, -127, 72, -121}));
    EXPECT_EQ(named(g, "yq").dtype, DType::Int8);
    EXPECT_EQ(named(g, "yq").quant, quant({0.3f}, {-28}));
}

TEST(QuantizeImport, QLinearConvBecomesConvWithAnInt32Bias) {
    Model m;
    m.input("x", {1, 1, 3, 3});
    m.output("y", {1, 2, 3, 3});
    m.floats("sx", {}, {0.5f}), m.ints("zx", TensorProto::INT8, {}, {1});
    m.floats("sw", {}, {0.25f}), m.ints("zw", TensorProto::INT8, {}, {0});
    m.ints("w", TensorProto::INT8, {2, 1, 1, 1}, {3, -4});
    m.ints("b", TensorProto::INT32, {2}, {10, -10});
    m.floats("sy", {}, {1.0f}), m.ints("zy", TensorProto::INT8, {}, {0});
    m.node("QuantizeLinear", "qx", {"x", "sx", "zx"}, {"xq"});
    m.node("QLinearConv", "qc", {"xq", "sx", "zx", "w", "sw", "zw", "sy", "zy", "b"}, {"yq"});
    m.node("DequantizeLinear", "dqy", {"yq", "sy", "zy"}, {"y"});
    const ImportedModel im = m.import();
    const Op& conv = op_named(im.graph, "qc");
    EXPECT_EQ(conv.kind, "Conv");
    ASSERT_EQ(conv.inputs.size(), 3u);
    const Tensor& b = im.graph.tensor(conv.inputs[2]);
    EXPECT_EQ(b.dtype, DType::Int32);
    EXPECT_EQ(b.quant, quant({0.125f}, {0}));
    EXPECT_EQ(im.weights.at("b").integers, (std::vector<int32_t>{10, -10}));
    EXPECT_EQ(im.graph.tensor(conv.outputs[0]).dtype, DType::Int8);
}

TEST(QuantizeImport, CastToFloatTypesImportsAndOthersAreRefused) {
    Model m;
    m.input("x", {4});
    m.output("y", {4}, TensorProto::FLOAT16);
    Model::attribute(m.node("Cast", "c", {"x"}, {"y"}), "to", TensorProto::FLOAT16);
    const ImportedModel im = m.import();
    EXPECT_EQ(std::get<std::string>(op_named(im.graph, "c").attributes.at("to")), "float16");
    EXPECT_EQ(named(im.graph, "y").dtype, DType::Float16);
    Model bad;
    bad.input("x", {4});
    bad.output("y", {4}, TensorProto::INT32);
    Model::attribute(bad.node("Cast", "c", {"x"}, {"y"}), "to", TensorProto::INT32);
    EXPECT_EQ(import_error(bad), "q.onnx: Cast 'c': to = INT32 not imported (only float32, float16 and bfloat16)");
}

/// x -> QuantizeLinear(scale, zero point) -> DequantizeLinear -> y, with `edit` applied.
Model qdq(const std::function<void(Model&)>& edit) {
    Model m;
    m.input("x", {2, 3});
    m.output("y", {2, 3});
    edit(m);
    m.node("QuantizeLinear", "q", {"x", "s", "z"}, {"xq"});
    m.node("DequantizeLinear", "dq", {"xq", "s", "z"}, {"y"});
    return m;
}

TEST(QuantizeImport, BadScalesAndZeroPointsAreRefusedNamingTheNode) {
    const auto zp = [](Model& m) { m.ints("z", TensorProto::INT8, {}, {0}); };
    EXPECT_EQ(import_error(qdq([&](Model& m) { m.floats("s", {}, {0.0f}), zp(m); })),
              "q.onnx: QuantizeLinear 'q': scale 's' holds 0, expected finite and > 0");
    EXPECT_EQ(import_error(qdq([&](Model& m) { m.floats("s", {}, {-0.5f}), zp(m); })),
              "q.onnx: QuantizeLinear 'q': scale 's' holds -0.5, expected finite and > 0");
    EXPECT_EQ(import_error(qdq([&](Model& m) { m.floats("s", {}, {std::nanf("")}), zp(m); })),
              "q.onnx: QuantizeLinear 'q': scale 's' holds nan, expected finite and > 0");
    EXPECT_EQ(import_error(qdq([&](Model& m) {
                  m.input("s", {});  // a graph input: not constant
                  zp(m);
              })),
              "q.onnx: QuantizeLinear 'q': scale 's' is not a constant (an initializer or a Constant)");
    // An int8 zero point given in int32_data beyond int8's range.
    EXPECT_EQ(import_error(qdq([&](Model& m) {
                  m.floats("s", {}, {0.5f});
                  TensorProto* t = m.graph->add_initializer();
                  t->set_name("z"), t->set_data_type(TensorProto::INT8), t->add_int32_data(300);
              })),
              "q.onnx: QuantizeLinear 'q': zero point 'z' holds 300, out of [-128, 127] (int8)");
    Model bias;  // an int32 bias' zero point must be 0
    bias.output("y", {2});
    bias.floats("s", {}, {0.5f}), bias.ints("b", TensorProto::INT32, {2}, {1, 2});
    bias.ints("z", TensorProto::INT32, {}, {5});
    bias.node("DequantizeLinear", "dqb", {"b", "s", "z"}, {"y"});
    EXPECT_EQ(import_error(bias), "q.onnx: DequantizeLinear 'dqb': zero point 'z' holds 5, expected 0 (int32)");
    EXPECT_EQ(import_error(qdq([&](Model& m) {
                  m.floats("s", {2}, {0.5f, 0.25f});  // per axis 1, whose size is 3
                  m.ints("z", TensorProto::INT8, {2}, {0, 0});
              })),
              "q.onnx: QuantizeLinear 'q': scale 's' has 2 values but axis 1 of 'xq' has size 3");
}

TEST(QuantizeImport, Uint8InputsAreRefused) {
    Model m;
    m.input("x", {4}, TensorProto::UINT8);
    m.output("y", {4});
    m.floats("s", {}, {0.5f}), m.ints("z", TensorProto::UINT8, {}, {128});
    m.node("DequantizeLinear", "dq", {"x", "s", "z"}, {"y"});
    EXPECT_EQ(import_error(m), "q.onnx: input 'x' is uint8, not imported (quantized inputs are int8: q - 128 with "
                               "the zero point - 128 stands for the same reals)");
}

// The element-type rules of the matmul family and the vector ops, on graph JSON.
TEST(QuantizedTypes, ProductsAndVectorOpsTakeInt8WithQuant) {
    const std::map<std::string, std::string> tensors = {
        {"a", R"({"name": "a", "shape": [2, 4], "dtype": "int8", "role": "input",
                  "quant": {"scale": [0.5], "zero_point": [1]}})"},
        {"w", R"({"name": "w", "shape": [4, 3], "dtype": "int8", "role": "input",
                  "quant": {"scale": [0.1, 0.2, 0.3], "zero_point": [0, 0, 0], "axis": 1}})"},
        {"f", R"({"name": "f", "shape": [4, 3], "role": "input"})"},
        {"h", R"({"name": "h", "shape": [4, 3], "dtype": "float16", "role": "input"})"},
        {"bias", R"({"name": "bias", "shape": [3], "dtype": "int32", "role": "input"})"}};
    const auto parse = [&](const std::string& extra, const std::string& ops) {  // the tensors the op reads
        std::string text;
        for (const auto& [name, json] : tensors)
            if (ops.find("\"" + name + "\"") != std::string::npos) text += json + ", ";
        return parse_graph("{\"tensors\": [" + text + extra.substr(2) + "], \"ops\": [" + ops + "]}", "t.json");
    };
    Graph q = parse(R"(, {"name": "y", "dtype": "int8", "role": "output", "quant": {"scale": [0.25], "zero_point": [0]}})",
                    R"({"op": "Gemm", "name": "mm", "inputs": ["a", "w", "bias"], "outputs": ["y"]})");
    EXPECT_EQ(named(q, "y").dtype, DType::Int8);
    Graph d = parse(R"(, {"name": "y", "role": "output"})",
                    R"({"op": "MatMul", "name": "mm", "inputs": ["a", "w"], "outputs": ["y"]})");
    EXPECT_EQ(named(d, "y").dtype, DType::Float32);
    try {
        parse(R"(, {"name": "y", "role": "output"})", R"({"op": "MatMul", "name": "mm", "inputs": ["a", "f"],
                                                         "outputs": ["y"]})");
        ADD_FAILURE();
    } catch (const CompileError& e) {
        EXPECT_EQ(std::string(e.what()), "t.json: op 'mm' (MatMul): input 'B' ('f') is float32 but input 'A' ('a') is int8");
    }
    Graph v = parse(R"(, {"name": "y", "role": "output"})",
                    R"({"op": "Sigmoid", "name": "s", "inputs": ["a"], "outputs": ["y"]})");
    EXPECT_EQ(named(v, "y").dtype, DType::Float32);
    // bfloat16/float16 products: same type, bias float32.
    Graph h = parse(R"(, {"name": "x16", "shape": [2, 4], "dtype": "float16", "role": "input"},
                      {"name": "b32", "shape": [3], "role": "input"}, {"name": "y", "role": "output"})",
                    R"({"op": "Gemm", "name": "mm", "inputs": ["x16", "h", "b32"], "outputs": ["y"]})");
    EXPECT_EQ(named(h, "y").dtype, DType::Float16);
}

// Before an int8 result the drain applies none or relu only.
TEST(QuantizedTypes, AnInt8ResultTakesNoOtherActivation) {
    const std::string text = R"({"tensors": [
        {"name": "a", "shape": [2, 4], "dtype": "int8", "role": "input", "quant": {"scale": [0.5], "zero_point": [1]}},
        {"name": "w", "shape": [4, 3], "dtype": "int8", "role": "input", "quant": {"scale": [0.1], "zero_point": [0]}},
        {"name": "y", "dtype": "int8", "role": "output", "quant": {"scale": [0.25], "zero_point": [0]}}],
        "ops": [{"op": "matmul", "name": "mm", "A": "a", "B": "w", "C": "y", "activation": "ACT"}]})";
    const auto with = [&](const std::string& act) {
        std::string t = text;
        t.replace(t.find("ACT"), 3, act);
        return t;
    };
    EXPECT_EQ(named(parse_graph(with("relu"), "t.json"), "y").dtype, DType::Int8);
    try {
        parse_graph(with("gelu"), "t.json");
        ADD_FAILURE();
    } catch (const CompileError& e) {
        EXPECT_EQ(std::string(e.what()), "t.json: op 'mm' (matmul): attribute 'activation' is 'gelu' but output 'y' is "
                                         "int8: only 'none' and 'relu' before an int8 result");
    }
}

TEST(QuantizedTypes, PerChannelQuantizationOfAComputedTensorDoesNotLower) {
    const Graph g = parse_graph(R"({"tensors": [{"name": "x", "shape": [2, 3], "role": "input"},
        {"name": "y", "role": "output", "dtype": "int8", "quant": {"scale": [0.1, 0.2, 0.3], "zero_point": [0, 0, 0],
         "axis": 1}}],
        "ops": [{"op": "QuantizeLinear", "name": "q", "inputs": ["x"], "outputs": ["y"]}]})", "t.json");
    const Op& q = g.ops()[0];
    EXPECT_EQ(schema_of(q).lowering_problem(g, q),
              "tensor 'y' has per-channel quantization (3 scales along axis 1) but is computed by the program: only "
              "constants may be quantized per channel");
}

}  // namespace
}  // namespace kpu::compiler
