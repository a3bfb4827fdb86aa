// kpu-compile as a user runs it.
#include <cstdio>
#include <string>

#include <gtest/gtest.h>

#include "tests/support/files.h"
#include "tests/support/run_tool.h"

namespace {

struct Result {
    int status = 0;      ///< kpu-compile's exit status
    std::string output;  ///< its stdout and stderr as one text
};

Result run(const std::string& args) {
    const kpu::test::ToolRun r =
        kpu::test::run_command(std::string(KPU_BINARY_DIR) + "/bin/kpu-compile " + args + " 2>&1", "kpu_compile_");
    return {r.exit_code, r.out};
}

const std::string kSource = KPU_SOURCE_DIR;
/// Each test's own .kpu: ctest runs tests in parallel, and two writing one file raced.
std::string out_kpu() {
    return std::string(KPU_BINARY_DIR) + "/cli_test_" + ::testing::UnitTest::GetInstance()->current_test_info()->name() +
           ".kpu";
}

TEST(KpuCompile, CompilesAndPrintsTheSummary) {
    Result r = run(kSource + "/examples/matmul_1024x1024x512.json -o " + out_kpu() + " --config " + kSource +
                   "/configs/t64.json");
    ASSERT_EQ(r.status, 0) << r.output;
    for (const char* s : {"C[1024, 1024] = A[1024, 512] @ B[512, 1024]", "tile grid", "tasks", "MATMUL_TILE",
                          "DRAM read", "arithmetic intensity"})
        EXPECT_NE(r.output.find(s), std::string::npos) << s << "\n" << r.output;
}

// kpu-compile takes kpu-sim's --set overrides, so a sweep needs no edited config copy per
// point; the tiler sees the overridden hardware (a quarter of t64's DRAM bandwidth makes the
// estimate longer), and the summary says what it compiled for.
TEST(KpuCompile, SetOverridesTheConfigAsKpuSimDoes) {
    const std::string out = std::string(KPU_BINARY_DIR) + "/cli_test_set.kpu";
    auto estimate = [](const std::string& text) {
        const size_t at = text.find("estimated ");
        return at == std::string::npos ? 0ull : std::stoull(text.substr(at + 10));
    };
    Result plain = run(kSource + "/examples/matmul_1024x1024x512.json -o " + out + " --config " + kSource +
                       "/configs/t64.json");
    Result slow = run(kSource + "/examples/matmul_1024x1024x512.json -o " + out + " --config " + kSource +
                      "/configs/t64.json --set dram.bandwidth_gb_per_s=16");
    ASSERT_EQ(slow.status, 0) << slow.output;
    EXPECT_NE(slow.output.find("for 't64' --set dram.bandwidth_gb_per_s=16: 64 compute tiles"), std::string::npos)
        << slow.output;
    EXPECT_GT(estimate(slow.output), 2 * estimate(plain.output)) << plain.output << slow.output;
    Result bad = run(kSource + "/examples/mlp.json -o " + out + " --set fabric.rowz=3");
    EXPECT_NE(bad.status, 0);
    EXPECT_EQ(bad.output, "kpu-compile: error: the portable target: --set fabric.rowz=3: no field "
                          "'fabric.rowz' in the config\n");
}

// The program's estimate adds its ops up, each alone, which overstates ops that run side by
// side; for a graph of several ops kpu-compile also prints the whole program replayed, which
// is what --bind replays.
TEST(KpuCompile, AGraphOfSeveralOpsAlsoPrintsTheWholeProgramReplayed) {
    const std::string out = std::string(KPU_BINARY_DIR) + "/cli_test_whole.kpu";
    Result r = run(kSource + "/examples/mlp.json -o " + out + " --config " + kSource + "/configs/t64.json");
    ASSERT_EQ(r.status, 0) << r.output;
    EXPECT_NE(r.output.find(" cycles (the ops' estimates, each op alone, added up)\n"), std::string::npos) << r.output;
    const std::string tag = "whole program replayed on 't64': ";
    const size_t at = r.output.find(tag);
    ASSERT_NE(at, std::string::npos) << r.output;
    Result bound = run("--bind --config " + kSource + "/configs/t64.json " + out);
    const std::string replayed = "replayed on 't64': " + r.output.substr(at + tag.size(), r.output.find('\n', at) - at - tag.size());
    EXPECT_NE(bound.output.find(replayed), std::string::npos) << replayed << " in " << bound.output;
    Result single = run(kSource + "/examples/matmul_1024x1024x512.json -o " + out + " --config " + kSource + "/configs/t64.json");
    EXPECT_EQ(single.output.find("whole program"), std::string::npos) << "one op: its estimate is the replay";
}

TEST(KpuCompile, BindShowsTheBoundProgram) {
    ASSERT_EQ(run(kSource + "/examples/mlp.json -o " + out_kpu() + " --config " + kSource + "/configs/minimal.json").status, 0);
    const std::string bound = std::string(KPU_BINARY_DIR) + "/cli_test_bound.json";
    Result r = run("--bind --config " + kSource + "/configs/edge.json " + out_kpu() + " -o " + bound);
    ASSERT_EQ(r.status, 0) << r.output;
    EXPECT_NE(r.output.find("bound to 'edge'"), std::string::npos) << r.output;
}

TEST(KpuCompile, ErrorsAreOneLineAndNonZero) {
    const std::string cases[] = {
        "/nonexistent.json -o x.kpu",
        kSource + "/examples/mlp.json -o " + out_kpu() + " --dataflow diagonal",
        kSource + "/examples/mlp.json",
        "--bind " + out_kpu(),
        "--bind --config " + kSource + "/configs/edge.json " + kSource + "/examples/mlp.json",
        "--bind --config " + kSource + "/configs/edge.json " + out_kpu() + " --dataflow weight-stationary",
        "/dev/zero -o x.kpu",
    };
    for (const std::string& args : cases) {
        SCOPED_TRACE(args);
        Result r = run(args);
        EXPECT_NE(r.status, 0);
        EXPECT_EQ(r.output.rfind("kpu-compile: error: ", 0), 0u) << r.output;
        EXPECT_EQ(r.output.find('\n'), r.output.size() - 1) << r.output;
    }
}

// Each of these is a file of the wrong kind, named as such: "format: missing required field"
// or "tensors: missing required field" would read like a corrupt file.
TEST(KpuCompile, AFileOfTheWrongKindIsNamedForWhatItIs) {
    ASSERT_EQ(run(kSource + "/examples/mlp.json -o " + out_kpu() + " --config " + kSource + "/configs/minimal.json").status, 0);
    const std::string mlp = kSource + "/examples/mlp.json", t64 = kSource + "/configs/t64.json";
    const std::pair<std::string, std::string> cases[] = {
        {out_kpu() + " -o x.kpu",
         out_kpu() + ": is a .kpu program, not a graph (it is compiled already: run it with kpu-sim --program)"},
        {t64 + " -o x.kpu", t64 + ": is a config, not a graph"},
        {"--bind --config " + t64 + " " + mlp,
         mlp + ": is a graph, not a .kpu program (compile it first: kpu-compile GRAPH.json -o X.kpu --config CFG)"},
        {mlp + " -o x.kpu --config " + out_kpu(), out_kpu() + ": is a .kpu program, not a config (a config is configs/<sku>.json)"},
    };
    for (const auto& [args, expected] : cases) {
        Result r = run(args);
        EXPECT_NE(r.status, 0) << args;
        EXPECT_EQ(r.output, "kpu-compile: error: " + expected + "\n") << args;
    }
}

TEST(KpuCompile, RefusesToWriteOverItsInput) {
    // `kpu-compile g.json -o g.json` would replace the graph with the program.
    const std::string graph = std::string(KPU_BINARY_DIR) + "/cli_test_self.json";
    {
        FILE* f = std::fopen(graph.c_str(), "w");
        std::fputs(R"({"op": "matmul", "A": {"shape": [8, 8]}, "B": {"shape": [8, 8]}, "C": {"shape": [8, 8]}})", f);
        std::fclose(f);
    }
    Result r = run(graph + " -o " + std::string(KPU_BINARY_DIR) + "/./cli_test_self.json");
    EXPECT_NE(r.status, 0);
    EXPECT_EQ(r.output, "kpu-compile: error: -o " + std::string(KPU_BINARY_DIR) + "/./cli_test_self.json is the input "
                        "file: writing it would destroy " + graph + "\n");
    const std::string text = kpu::test::slurp(graph);
    EXPECT_EQ(text.rfind("{\"op\": \"matmul\"", 0), 0u) << text;
}

TEST(KpuCompile, ErrorsAfterReadingNameTheFileAndTheConfig) {
    // A graph too big for the config's DRAM is refused before any tiling (a 65536^3 matmul
    // would search tilings for minutes).
    const std::string big = std::string(KPU_BINARY_DIR) + "/cli_test_big.json";
    {
        FILE* f = std::fopen(big.c_str(), "w");
        std::fputs(R"({"op": "matmul", "A": {"shape": [65536, 65536]}, "B": {"shape": [65536, 65536]}, "C": {"shape": [65536, 65536]}})", f);
        std::fclose(f);
    }
    Result r = run(big + " -o " + out_kpu() + " --config " + kSource + "/configs/t64.json");
    EXPECT_NE(r.status, 0);
    EXPECT_EQ(r.output, "kpu-compile: error: " + big + " for 't64': the graph's tensors need 51539607552 bytes of DRAM "
                        "(each from a 4096-byte interleave boundary) but config 't64' has 34359738368\n");
    // A program that does not fit the config it is bound to, even re-blocked: a softmax row
    // of 16384 floats and its double buffers are four times minimal's L2.
    const std::string wide = std::string(KPU_BINARY_DIR) + "/cli_test_wide.json";
    {
        FILE* f = std::fopen(wide.c_str(), "w");
        std::fputs(R"({"tensors": [{"name": "x", "shape": [64, 16384], "role": "input"}, {"name": "y"}],
                       "ops": [{"op": "Softmax", "name": "softmax", "inputs": ["x"], "outputs": ["y"]}]})", f);
        std::fclose(f);
    }
    ASSERT_EQ(run(wide + " -o " + out_kpu() + " --config " + kSource + "/configs/datacenter.json").status, 0);
    r = run("--bind --config " + kSource + "/configs/minimal.json " + out_kpu());
    EXPECT_NE(r.status, 0);
    EXPECT_EQ(r.output.rfind("kpu-compile: error: " + out_kpu() + " on 'minimal': cannot bind op", 0), 0u) << r.output;
}

TEST(KpuCompile, WithoutConfigTilesForThePortableTargetAndBindReblocksWhatDoesNotFit) {
    // No --config: the portable target, which minimal binds as it is.
    Result r = run(kSource + "/examples/matmul_1024x1024x512.json -o " + out_kpu());
    ASSERT_EQ(r.status, 0) << r.output;
    EXPECT_NE(r.output.find("for 'portable': 64 compute tiles, 16x16 fabric"), std::string::npos) << r.output;
    Result bound = run("--bind --config " + kSource + "/configs/minimal.json " + out_kpu());
    ASSERT_EQ(bound.status, 0) << bound.output;
    EXPECT_EQ(bound.output.find("re-blocked"), std::string::npos) << bound.output;
    // Compiled for t64, its 128x64 tiles are re-blocked for minimal: said, then replayed.
    ASSERT_EQ(run(kSource + "/examples/matmul_1024x1024x512.json -o " + out_kpu() + " --config " + kSource +
                  "/configs/t64.json").status, 0);
    bound = run("--bind --config " + kSource + "/configs/minimal.json " + out_kpu());
    ASSERT_EQ(bound.status, 0) << bound.output;
    EXPECT_EQ(bound.output.rfind("op 'matmul': tile 128x64x128 re-blocked to ", 0), 0u) << bound.output;
    EXPECT_NE(bound.output.find(" for minimal: "), std::string::npos) << bound.output;
    EXPECT_NE(bound.output.find("\nreplayed on 'minimal': "), std::string::npos) << bound.output;
}

}  // namespace
