// The host-memory budget: a run's estimate against its closed form, a run or a bind that
// does not fit refused before it starts with both numbers, and std::bad_alloc named.
#include "sc_main/host_budget.h"

#include <cstdlib>
#include <fstream>
#include <string>

#include <gtest/gtest.h>

#include "compiler/bound_program.h"
#include "compiler/generate.h"
#include "compiler/graph_json.h"
#include "hardware/host_memory.h"
#include "tests/support/config.h"
#include "tests/support/graphs.h"
#include "tests/support/run_tool.h"

namespace kpu::cli {
namespace {

TEST(HostBudget, ARunsEstimateIsItsTensorsAndItsOps) {
    const uint64_t m = 96, n = 64, k = 80;
    const compiler::Program p =
        compiler::compile(compiler::parse_graph(test::matmul_json(m, n, k), "mm.json"), test::config("edge"));
    const uint64_t a = m * k * 4, b = k * n * 4, c = m * n * 4;
    const uint64_t ops = compiler::count_ops(p).total * sizeof(compiler::BoundOp);
    // DRAM pages of A, B, C; two host copies of the inputs and of the output read back.
    EXPECT_EQ(run_host_bytes(p, false), (a + b + c) + 2 * (a + b) + 2 * c + ops);
    // --check: the reference holds every tensor once more.
    EXPECT_EQ(run_host_bytes(p, true), (a + b + c) + 2 * (a + b) + 2 * c + (a + b + c) + ops);
}

TEST(HostBudget, TypedTensorsCountTheirOwnBytesAndTheHostsFloats) {
    // x int8 [4, 8] -> DequantizeLinear -> y float32: DRAM and the host's written copy hold
    // 1 byte per element of x, the floats the host and the reference keep 4.
    compiler::Program p;
    p.graph = compiler::parse_graph(R"({"tensors": [
        {"name": "x", "shape": [4, 8], "dtype": "int8", "role": "input", "quant": {"scale": [0.5], "zero_point": [3]}},
        {"name": "y", "role": "output"}],
      "ops": [{"op": "DequantizeLinear", "inputs": ["x"], "outputs": ["y"]}]})", "dq.json");
    const uint64_t x = 32, xf = 32 * 4, y = 32 * 4;
    const uint64_t ops = compiler::count_ops(p).total * sizeof(compiler::BoundOp);
    EXPECT_EQ(run_host_bytes(p, false), (x + y) + (x + xf) + 2 * y + ops);
    EXPECT_EQ(run_host_bytes(p, true), (x + y) + (x + xf) + 2 * y + (xf + y) + ops);
}

TEST(HostBudget, TheProblemLineHasBothNumbers) {
    const uint64_t gib = uint64_t(1) << 30;
    EXPECT_EQ(hw::host_memory_problem(gib, 2 * gib), "");
    EXPECT_EQ(hw::host_memory_problem(21 * gib + gib / 3, 8 * gib),
              "needs about 21.3 GiB of host memory, 8.0 GiB allowed by --max-host-memory");
    EXPECT_EQ(hw::host_memory_problem(300 << 20, 100 << 20), "needs about 300 MiB of host memory, 100 MiB allowed by --max-host-memory");
    const std::optional<uint64_t> available = hw::available_host_memory();
    ASSERT_TRUE(available.has_value()) << "no /proc/meminfo";
    const std::string problem = hw::host_memory_problem(*available + 64 * gib, std::nullopt);
    EXPECT_EQ(problem.rfind("needs about ", 0), 0u) << problem;
    EXPECT_NE(problem.find(" available; --max-host-memory to override"), std::string::npos) << problem;
    EXPECT_EQ(hw::parse_host_memory_limit("0.5"), gib / 2);
    for (const char* bad : {"", "-1", "0", "2x", " 4", "lots"}) {
        try {
            hw::parse_host_memory_limit(bad);
            ADD_FAILURE() << "accepted '" << bad << "'";
        } catch (const std::runtime_error& e) {
            EXPECT_EQ(std::string(e.what()),
                      "--max-host-memory " + std::string(bad) + ": expected a positive number of GiB, e.g. 64 or 0.5");
        }
    }
}

TEST(HostBudget, BadAllocIsNamedByTheStepThatRanOutOfMemory) {
    try {
        allocating("reading the outputs back", []() -> int { throw std::bad_alloc(); });
        FAIL() << "no exception";
    } catch (const std::runtime_error& e) {
        EXPECT_EQ(std::string(e.what()), "out of host memory while reading the outputs back");
    }
    EXPECT_EQ(allocating("nothing", [] { return 7; }), 7);
}

TEST(HostBudget, KpuSimAndKpuCompileRefuseAJobOverTheBudgetBeforeItStarts) {
    const std::string dir = ::testing::TempDir() + "kpu_host_budget/";
    ASSERT_EQ(std::system(("mkdir -p " + dir).c_str()), 0);
    std::ofstream(dir + "mm.json") << test::matmul_json(1024, 1024, 1024);
    const std::string tools = "cd " KPU_SOURCE_DIR " && " KPU_BINARY_DIR "/bin/";
    ASSERT_EQ(test::run_command(tools + "kpu-compile " + dir + "mm.json -o " + dir + "mm.kpu --config configs/t64.json",
                                "host_budget_")
                  .exit_code,
              0);
    const test::ToolRun sim =
        test::run_command(tools + "kpu-sim --config configs/t64.json --program " + dir + "mm.kpu --max-host-memory 0.01",
                          "host_budget_sim_");
    EXPECT_EQ(sim.exit_code, 1);
    EXPECT_EQ(sim.out, "") << "the run started";
    EXPECT_EQ(sim.err.rfind("kpu-sim: error: " + dir + "mm.kpu on t64: needs about ", 0), 0u) << sim.err;
    EXPECT_NE(sim.err.find(" MiB of host memory, 10 MiB allowed by --max-host-memory\n"), std::string::npos) << sim.err;
    const test::ToolRun ok = test::run_command(
        tools + "kpu-sim --config configs/t64.json --program " + dir + "mm.kpu --max-host-memory 1", "host_budget_ok_");
    EXPECT_EQ(ok.exit_code, 0) << ok.err;
    const test::ToolRun bind = test::run_command(
        tools + "kpu-compile --bind " + dir + "mm.kpu --config configs/t64.json --max-host-memory 0.0001", "host_budget_bind_");
    EXPECT_EQ(bind.exit_code, 1);
    EXPECT_EQ(bind.err.rfind("kpu-compile: error: " + dir + "mm.kpu on 't64': binding its ", 0), 0u) << bind.err;
    EXPECT_NE(bind.err.find(" MiB of host memory, 0 MiB allowed by --max-host-memory\n"),
              std::string::npos)
        << bind.err;
}

}  // namespace
}  // namespace kpu::cli
