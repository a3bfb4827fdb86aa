// kpu-sim --elaborate-only, run as a user would: module counts per kind from the config.
#include <gtest/gtest.h>

#include <map>
#include <sstream>
#include <string>

#include "hardware/config.h"
#include "tests/support/config.h"
#include "tests/support/run_tool.h"

namespace {

/// kpu-sim ARGS from the source root; `out` gets stdout and stderr as one text.
int run(const std::string& args, std::string& out) {
    const kpu::test::ToolRun r =
        kpu::test::run_command("cd " KPU_SOURCE_DIR " && " KPU_BINARY_DIR "/bin/kpu-sim " + args + " 2>&1", "kpu_elaborate_");
    out = r.out;
    return r.exit_code;
}

/// "  kind   n" lines of the output, by kind (the total included).
std::map<std::string, uint64_t> counts(const std::string& out) {
    std::map<std::string, uint64_t> c;
    std::istringstream lines(out);
    std::string line;
    while (std::getline(lines, line)) {
        std::istringstream words(line);
        std::string kind;
        uint64_t n = 0;
        if (line.rfind("  ", 0) == 0 && words >> kind >> n) c[kind] = n;
    }
    return c;
}

TEST(KpuSimElaborateOnly, PrintsEveryModuleOfTheTreePerKind) {
    // Every SC_MODULE the platform builds, from the config: chip level, then per tile.
    const kpu::hw::Config cfg = kpu::test::config("minimal");
    const uint64_t tiles = cfg.compute_tiles;
    const std::map<std::string, uint64_t> per_chip = {
        {"kpu_platform", 1}, {"host_interface", 1},         {"sequencer", 1},
        {"interconnect", 1}, {"dram_channel", cfg.dram.count}, {"dma_engine", cfg.dma.count},
    };
    const std::map<std::string, uint64_t> per_tile = {
        {"compute_tile", 1},        {"tile_switch", 1},  {"l3_tile", 1},
        {"l2_bank", cfg.l2.count},  {"l1_buffer", cfg.l1.count}, {"l1_fanout", 1},
        {"block_mover", cfg.block_mover.count}, {"streamer", cfg.streamer.count}, {"systolic_fabric", 1},
        {"vector_engine", 1},
    };
    std::map<std::string, uint64_t> expected = per_chip;
    uint64_t total = 0;
    for (const auto& [kind, n] : per_tile) expected[kind] = n * tiles;
    for (const auto& [kind, n] : expected) total += n;
    expected["total"] = total;

    std::string out;
    ASSERT_EQ(run("--config configs/minimal.json --elaborate-only", out), 0) << out;
    EXPECT_NE(out.find("platform kpu (minimal) elaborated:"), std::string::npos) << out;
    EXPECT_EQ(counts(out), expected) << out;
    EXPECT_EQ(total, 4 + 2 + 2 + 1 * (6 + 4 + 64 + 1 + 2u)) << "minimal.json changed: update docs/benchmarks.md";
}

TEST(KpuSimElaborateOnly, PrintsModuleCountsPerKind) {
    std::string out;
    ASSERT_EQ(run("--config configs/edge.json --elaborate-only", out), 0) << out;
    EXPECT_NE(out.find("platform kpu (edge) elaborated:"), std::string::npos) << out;
    EXPECT_NE(out.find("  dram_channel      2\n"), std::string::npos) << out;
    EXPECT_NE(out.find("  l2_bank           32\n"), std::string::npos) << out;
    EXPECT_NE(out.find("  l1_buffer         512\n"), std::string::npos) << out;
    EXPECT_NE(out.find("  l1_fanout         4\n"), std::string::npos) << out;
    EXPECT_NE(out.find("  streamer          16\n"), std::string::npos) << out;
    EXPECT_NE(out.find("  systolic_fabric   4\n"), std::string::npos) << out;
    EXPECT_NE(out.find("  vector_engine     4\n"), std::string::npos) << out;
    EXPECT_NE(out.find("  sequencer         1\n"), std::string::npos) << out;
    EXPECT_NE(out.find("  host_interface    1\n"), std::string::npos) << out;
    EXPECT_NE(out.find("  total             600\n"), std::string::npos) << out;
}

TEST(KpuSimElaborateOnly, OverridesReachThePlatform) {
    std::string out;
    ASSERT_EQ(run("--config configs/minimal.json --set l1.buffers_per_tile=3 --elaborate-only", out), 0) << out;
    EXPECT_NE(out.find("  l1_buffer         3\n"), std::string::npos) << out;
}

}  // namespace
