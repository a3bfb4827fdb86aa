// kpu-sim --elaborate-only, run as a user would: module counts per kind from the config.
#include <gtest/gtest.h>

#include <cstdlib>
#include <fstream>
#include <string>

#include <sys/wait.h>

namespace {

std::string slurp(const std::string& path) {
    std::ifstream in(path);
    return std::string(std::istreambuf_iterator<char>(in), {});
}

int run(const std::string& args, std::string& out) {
    const std::string file = ::testing::TempDir() + "kpu_elaborate_" +
                             ::testing::UnitTest::GetInstance()->current_test_info()->name() + ".out";
    const std::string cmd = "cd " KPU_SOURCE_DIR " && " KPU_BINARY_DIR "/bin/kpu-sim " + args + " >" + file + " 2>&1";
    const int status = std::system(cmd.c_str());
    out = slurp(file);
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
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
    EXPECT_NE(out.find("  total             589\n"), std::string::npos) << out;
}

TEST(KpuSimElaborateOnly, OverridesReachThePlatform) {
    std::string out;
    ASSERT_EQ(run("--config configs/minimal.json --set l1.buffers_per_tile=3 --elaborate-only", out), 0) << out;
    EXPECT_NE(out.find("  l1_buffer         3\n"), std::string::npos) << out;
}

}  // namespace
