#include "compiler/kpu_format.h"

#include <cmath>
#include <functional>
#include <iomanip>
#include <sstream>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "compiler/generate.h"
#include "compiler/tiler.h"
#include "tests/compiler/test_util.h"

namespace kpu::compiler {
namespace {

using json = nlohmann::json;

/// At -O0: what add_kernel builds kernel by kernel (no pass adds to it).
Program mlp_program() {
    return compile(parse_graph(test::mlp_json(64, 96, 128, 32), "mlp.json"), test::config("edge"),
                   CompileOptions(Dataflow::OutputStationary, DepthwiseUnit::Auto, PassSelection{0, {}}));
}

// A program built with add_kernel (custom tilings) reads back: add_kernel sums the kernels'
// hints into program.hints, so the writer need not (else "hints.dram_read_bytes: 0 but the
// op stream gives ...").
TEST(KpuFormat, AProgramBuiltKernelByKernelRoundTrips) {
    const hw::Config edge = test::config("edge");
    Program p;
    p.graph = parse_graph(test::mlp_json(64, 96, 128, 32), "mlp.json");
    p.target = target_of(edge);
    for (uint32_t op = 0; op < p.graph.ops().size(); ++op)
        add_kernel(p, op, Dataflow::OutputStationary, choose_tiling(edge, p.graph, op, Dataflow::OutputStationary));
    EXPECT_GT(p.hints.macs, 0u);
    EXPECT_EQ(read_kpu(write_kpu(p), "custom.kpu"), p);
    CompileOptions o0;  // no optimization pass: compile() records none
    o0.passes.level = 0;
    EXPECT_EQ(p, compile(parse_graph(test::mlp_json(64, 96, 128, 32), "mlp.json"), edge, o0))
        << "what compile() builds the same way";
}

// A program compiled with --set records the overrides in its target (only then: a file
// compiled without any has no such field, as before), and reads them back.
TEST(KpuFormat, TheTargetRecordsTheConfigsOverrides) {
    const hw::Config point = test::config("edge", {hw::parse_override("l1.capacity_kib=8")});
    const Program p = compile(parse_graph(test::mlp_json(64, 96, 128, 32), "mlp.json"), point);
    EXPECT_EQ(p.target.overrides, std::vector<std::string>{"l1.capacity_kib=8"});
    const std::string text = write_kpu(p);
    EXPECT_EQ(json::parse(text)["target"]["overrides"], json::array({"l1.capacity_kib=8"}));
    EXPECT_EQ(read_kpu(text, "point.kpu"), p);
    EXPECT_FALSE(json::parse(write_kpu(mlp_program()))["target"].contains("overrides"));
}

TEST(KpuFormat, RoundTripIsLossless) {
    for (Dataflow d : {Dataflow::OutputStationary, Dataflow::WeightStationary}) {
        const Program p = compile(parse_graph(test::mlp_json(64, 96, 128, 32), "mlp.json"), test::config("edge"), {d});
        const std::string text = write_kpu(p);
        const Program back = read_kpu(text, "mlp.kpu");
        EXPECT_EQ(back, p);
        EXPECT_EQ(write_kpu(back), text);
    }
    // K in passes: the tile carries kc as a fourth entry.
    const Program p = test::compile_matmul(8, 8, 1 << 16, test::config("minimal"));
    ASSERT_GT(p.kernels[0].tile.kc, 0u);
    const std::string text = write_kpu(p);
    EXPECT_EQ(json::parse(text)["kernels"][0]["tile"].size(), 4u);
    EXPECT_EQ(read_kpu(text, "long_k.kpu"), p);
}

TEST(KpuFormat, ThePassesThatRanAndWhatAnOpAbsorbedRoundTrip) {
    Program p = mlp_program();
    p.passes = {Pass::FoldConstants, Pass::FuseEpilogue};
    Graph g = p.graph;
    p.graph = Graph();
    for (const Tensor& t : g.tensors()) p.graph.add_tensor(t);
    for (Op op : g.ops()) {
        if (op.name == "fc1") op.fused_with = {"bias_add", "relu"};
        p.graph.add_op(op);
    }
    const std::string text = write_kpu(p);
    EXPECT_EQ(json::parse(text)["passes"], json::array({"fold-constants", "fuse-epilogue"}));
    EXPECT_EQ(json::parse(text)["graph"]["ops"][0]["fused_with"], json::array({"bias_add", "relu"}));
    EXPECT_EQ(read_kpu(text, "mlp.kpu"), p);
    // No pass ran, nothing fused: neither key is written (a program of before reads the same).
    p.passes.clear();
    EXPECT_FALSE(json::parse(write_kpu(p)).contains("passes"));
}

TEST(KpuFormat, PassSelectionFollowsTheLevelLessTheDisabled) {
    PassSelection o0{0, {}}, o1{1, {}}, o2{2, {}}, o3{3, {Pass::FuseAttention}};
    for (const auto& [pass, name] : kPassNames) {
        SCOPED_TRACE(name);
        EXPECT_FALSE(o0.enabled(pass));
        EXPECT_EQ(o1.enabled(pass), kPassLevel[int(pass)] <= 1);
        EXPECT_EQ(o2.enabled(pass), pass != Pass::KeepInL3);
        EXPECT_EQ(o3.enabled(pass), pass != Pass::FuseAttention);
    }
    EXPECT_EQ(PassSelection{}.level, 2) << "-O2 is the default";
}

TEST(KpuFormat, SizeDoesNotGrowWithTheTileCount) {
    const hw::Config t64 = test::config("t64");
    const size_t small = write_kpu(test::compile_matmul(256, 256, 256, t64)).size();
    const size_t big = write_kpu(test::compile_matmul(4096, 4096, 4096, t64)).size();
    const OpCounts ops = count_ops(test::compile_matmul(4096, 4096, 4096, t64));
    EXPECT_GT(ops.total, 400000u);
    EXPECT_LT(big, 64u * 1024) << "4096^3 .kpu is " << big << " bytes";
    EXPECT_LT(small, 8u * 1024);
}

/// Writes the MLP program, lets `edit` change its JSON, and returns the reader's message.
template <typename Edit>
std::string read_error(Edit edit) {
    json j = json::parse(write_kpu(mlp_program()));
    edit(j);
    return test::error_of([&] { read_kpu(j.dump(), "bad.kpu"); });
}

TEST(KpuFormat, EveryValidationErrorIsPrecise) {
    struct Case {
        std::function<void(json&)> edit;
        const char* expected;
    };
    const Case cases[] = {
        {[](json& j) { j["version"] = 2; }, "bad.kpu: version: unsupported version 2 (this reader knows 1)"},
        {[](json& j) { j["format"] = "elf"; }, "bad.kpu: format: expected \"kpu\""},
        {[](json& j) { j["extra"] = 1; }, "bad.kpu: extra: unknown field"},
        {[](json& j) { j["passes"] = {"fuse-epilogue", "fuse-everything"}; },
         "bad.kpu: passes[1]: unknown pass 'fuse-everything' (fold-constants, fold-batchnorm, fuse-epilogue, "
         "fuse-ffn, fuse-attention, plan-memory, fuse-rows, keep-in-l3, fold-qdq)"},
        {[](json& j) { j["target"]["overrides"] = {1}; }, "bad.kpu: target.overrides[0]: expected a string, got 1"},
        {[](json& j) { j.erase("tasks"); }, "bad.kpu: tasks: missing required field"},
        // bad types
        {[](json& j) { j["tasks"][0]["kernel"] = "zero"; }, "bad.kpu: tasks[0].kernel: expected a non-negative integer"},
        {[](json& j) { j["kernels"][0]["tile"] = 16; }, "bad.kpu: kernels[0].tile: expected an array"},
        {[](json& j) { j["graph"]["tensors"][0]["shape"][0] = -1; },
         "bad.kpu: graph.tensors[0].shape[0]: expected a non-negative integer"},
        // dangling tensor and op references
        {[](json& j) { j["graph"]["ops"][0]["A"] = "nowhere"; }, "bad.kpu: graph.ops[0].A: unknown tensor 'nowhere'"},
        {[](json& j) { j["kernels"][1]["op"] = "fc9"; }, "bad.kpu: kernels[1].op: unknown op 'fc9'"},
        {[](json& j) { std::swap(j["kernels"][0], j["kernels"][1]); },
         "bad.kpu: kernels[0].op: op 'fc2' but op 0 in graph order is 'fc1'"},
        {[](json& j) { j["kernels"][0]["dataflow"] = "row-stationary"; },
         "bad.kpu: kernels[0].dataflow: unknown dataflow 'row-stationary'"},
        {[](json& j) { j["kernels"][0]["tile"][2] = 0; }, "bad.kpu: kernels[0].tile[2]: tk is 0"},
        {[](json& j) { j["kernels"][0]["tile"][0] = 65; }, "bad.kpu: kernels[0].tile[0]: tm 65 exceeds M 64"},
        {[](json& j) { j["kernels"][0]["tile"] = {16, 16, 16, 16, 16}; },
         "bad.kpu: kernels[0].tile: expected [tm, tn, tk] or [tm, tn, tk, kc], got [16,16,16,16,16]"},
        {[](json& j) { j["kernels"][0]["tile"] = {16, 16, 16, 40}; },
         "bad.kpu: kernels[0].tile[3]: kc 40 must be a multiple of tk 16 and less than K 96, at most 16777216"},

        {[](json& j) { j["kernels"][0]["tile"] = {16, 16, 16, 96}; },
         "bad.kpu: kernels[0].tile[3]: kc 96 must be a multiple of tk 16 and less than K 96"},
        // out-of-range tile indices and coverage
        {[](json& j) { j["tasks"][0]["rows"] = {0, 99}; }, "bad.kpu: tasks[0].rows: tile row 98 out of range"},
        {[](json& j) { j["tasks"][0]["cols"] = {3, 3}; }, "bad.kpu: tasks[0].cols: empty or invalid tile range"},
        {[](json& j) { j["tasks"][0]["kernel"] = 7; }, "bad.kpu: tasks[0].kernel: kernel 7 out of range (2 kernels)"},
        {[](json& j) { j["tasks"].push_back(j["tasks"][0]); }, "is already covered by task 0"},
        // dependencies
        {[](json& j) { j["tasks"][0]["deps"] = {999}; }, "bad.kpu: tasks[0].deps[0]: task 999 does not exist"},
        {[](json& j) {
             const size_t last = j["tasks"].size() - 1;
             j["tasks"][0]["deps"] = {last};
             j["tasks"][last]["deps"] = {0};
         },
         "bad.kpu: tasks: dependency cycle: 0 -> "},
        {[](json& j) { j["tasks"][0]["deps"] = {1}; }, "bad.kpu: tasks[0].deps[0]: depends on later task 1"},
        {[](json& j) {
             const size_t last = j["tasks"].size() - 1;
             j["tasks"][last]["deps"] = json::array();
         },
         "which writes part of tensor 'h' that this task reads"},
        // hints
        {[](json& j) { j["kernels"][0]["hints"]["dram_read_bytes"] = 1; },
         "bad.kpu: kernels[0].hints.dram_read_bytes: 1 but the op stream gives"},
        {[](json& j) { j["hints"]["macs"] = 5; }, "bad.kpu: hints.macs: 5 but the op stream gives"},
    };
    for (size_t i = 0; i < std::size(cases); ++i) {
        SCOPED_TRACE(cases[i].expected);
        const std::string e = read_error(cases[i].edit);
        EXPECT_NE(e.find(cases[i].expected), std::string::npos) << e;
        EXPECT_EQ(e.find('\n'), std::string::npos) << e;
    }
}

// A .kpu written by another tool may divide one ulp off: the quotient must agree to 1e-9
// (6 digits do not), and reading keeps the op stream's value, so the program read is the
// same whatever was written.
TEST(KpuFormat, ArithmeticIntensityAgreesTo1e9AndReadsAsTheOpStreamsValue) {
    const Program original = mlp_program();
    for (const double relative : {0x1p-52, 1e-10}) {
        json j = json::parse(write_kpu(original));
        const double actual = j["hints"]["arithmetic_intensity"].get<double>();
        j["hints"]["arithmetic_intensity"] = actual * (1 + relative);
        j["kernels"][0]["hints"]["arithmetic_intensity"] =
            j["kernels"][0]["hints"]["arithmetic_intensity"].get<double>() * (1 - relative);
        EXPECT_EQ(read_kpu(j.dump(), "near.kpu"), original) << relative;
    }
    double stored = 0, actual = 0;
    const std::string e = read_error([&](json& j) {
        actual = j["hints"]["arithmetic_intensity"].get<double>();
        stored = actual * (1 + 1e-6);  // 6 digits
        j["hints"]["arithmetic_intensity"] = stored;
    });
    std::ostringstream expected;
    expected << std::setprecision(17) << "bad.kpu: hints.arithmetic_intensity: " << stored
             << " but the op stream gives " << actual << " (2 x macs / (dram_read_bytes + dram_write_bytes), to 1e-9)";
    EXPECT_EQ(e, expected.str());
    const std::string sum = read_error([](json& j) { j["hints"]["estimated_cycles"] = 7; });
    EXPECT_NE(sum.find("bad.kpu: hints.estimated_cycles: 7 but the kernels' estimates add up to "), std::string::npos)
        << sum;
}

TEST(KpuFormat, TileCountsAreCountedIn64Bits) {
    // M = 2^32 + 1 rows in tiles of 1 are 2^32 + 1 tile rows (not wrapped to 1 in 32 bits):
    // more C tiles than a program may have, not a one-task program covering one row.
    json j = json::parse(write_kpu(
        compile(parse_graph(R"({"op": "matmul", "A": {"shape": [1, 1]}, "B": {"shape": [1, 1]}, "C": {"shape": [1, 1]}})",
                            "one.json"),
                test::config("minimal"))));
    const uint64_t rows = (uint64_t(1) << 32) + 1;
    j["graph"]["tensors"][0]["shape"][0] = rows;  // A
    j["graph"]["tensors"][2]["shape"][0] = rows;  // C
    j["kernels"][0]["tile"] = {1, 1, 1};
    EXPECT_EQ(test::error_of([&] { read_kpu(j.dump(), "big.kpu"); }), "big.kpu: kernels[0].tile: more than 16777216 C tiles");
    j["kernels"][0]["tile"] = {rows, 1, 1};  // a side no uint32 holds
    EXPECT_EQ(test::error_of([&] { read_kpu(j.dump(), "big.kpu"); }),
              "big.kpu: kernels[0].tile[0]: tm 4294967297 exceeds the longest tile side, 16777216");
}

TEST(KpuFormat, UncoveredTileIsReported) {
    json j = json::parse(write_kpu(mlp_program()));
    j["tasks"].erase(j["tasks"].size() - 1);  // nothing depends on the last task
    const std::string e = test::error_of([&] { read_kpu(j.dump(), "bad.kpu"); });
    EXPECT_NE(e.find("bad.kpu: kernels[1]: tile ("), std::string::npos) << e;
    EXPECT_NE(e.find(") is covered by no task"), std::string::npos) << e;
}

TEST(KpuFormat, MalformedJsonAndMissingFile) {
    EXPECT_NE(test::error_of([] { read_kpu("{\"format\": ", "x.kpu"); }).find("x.kpu: malformed JSON: parse error at line 1, column 12"),
              std::string::npos);
    EXPECT_NE(test::error_of([] { read_kpu_file("/nonexistent/y.kpu"); }).find("/nonexistent/y.kpu: cannot open program file"),
              std::string::npos);
}

}  // namespace
}  // namespace kpu::compiler
