// Runs the real kpu-sim binary the way a user or a script does and checks exit codes and
// the one-line messages.
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <string>

#include <gtest/gtest.h>
#include <sys/wait.h>

namespace {

struct Result {
    int exit_code;
    std::string out;
    std::string err;
};

std::string slurp(const std::string& path) {
    std::ifstream in(path);
    return std::string(std::istreambuf_iterator<char>(in), {});
}

Result run(const std::string& args) {
    // ctest runs tests in parallel: each test gets its own output files.
    const std::string stem = ::testing::TempDir() + "kpu_cli_" +
                             ::testing::UnitTest::GetInstance()->current_test_info()->name();
    const std::string out = stem + ".out", err = stem + ".err";
    const std::string cmd = "cd " KPU_SOURCE_DIR " && " KPU_BINARY_DIR "/bin/kpu-sim " + args + " >" + out + " 2>" + err;
    int status = std::system(cmd.c_str());
    return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, slurp(out), slurp(err)};
}

int lines(const std::string& text) { return int(std::count(text.begin(), text.end(), '\n')); }

TEST(KpuSimCli, DescribePrintsDerivedFigures) {
    Result r = run("--config configs/roofline-ref.json --describe");
    EXPECT_EQ(r.exit_code, 0) << r.err;
    EXPECT_NE(r.out.find("1.024 TFLOP/s"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("ridge point"), std::string::npos) << r.out;
}

TEST(KpuSimCli, MissingConfigFileIsOneLine) {
    Result r = run("--config configs/does-not-exist.json --describe");
    EXPECT_NE(r.exit_code, 0);
    EXPECT_EQ(r.err, "kpu-sim: error: configs/does-not-exist.json: cannot open config file\n");
}

TEST(KpuSimCli, TypoInAKeyIsOneLine) {
    const std::string path = ::testing::TempDir() + "typo.json";
    std::string text = slurp(KPU_SOURCE_DIR "/configs/minimal.json");
    text.replace(text.find("\"latency_cycles\""), 16, "\"latency_cylces\"");
    std::ofstream(path) << text;
    Result r = run("--config " + path + " --describe");
    EXPECT_NE(r.exit_code, 0);
    EXPECT_EQ(lines(r.err), 1) << r.err;
    EXPECT_NE(r.err.find(path + ": dram.latency_cylces: unknown field (did you mean 'latency_cycles'?)"),
              std::string::npos)
        << r.err;
}

TEST(KpuSimCli, SetOverrideReachesTheModel) {
    Result r = run("--config configs/roofline-ref.json --set fabric.rows=32 --describe");
    EXPECT_EQ(r.exit_code, 0) << r.err;
    EXPECT_NE(r.out.find("2.048 TFLOP/s"), std::string::npos) << r.out;
    Result bad = run("--config configs/roofline-ref.json --set fabric.rows=-2 --describe");
    EXPECT_NE(bad.exit_code, 0);
    EXPECT_EQ(bad.err, "kpu-sim: error: configs/roofline-ref.json: fabric.rows: must be > 0, got -2\n");
}

TEST(KpuSimCli, UnknownOptionIsOneLine) {
    Result r = run("--config configs/minimal.json --frobnicate");
    EXPECT_NE(r.exit_code, 0);
    EXPECT_EQ(lines(r.err), 1) << r.err;
    EXPECT_NE(r.err.find("frobnicate"), std::string::npos) << r.err;
}

TEST(KpuSimCli, TrainBytesNeedsAProgramAndANumber) {
    Result alone = run("--config configs/minimal.json --describe --train-bytes 0");
    EXPECT_NE(alone.exit_code, 0);
    EXPECT_EQ(lines(alone.err), 1) << alone.err;
    EXPECT_NE(alone.err.find("--train-bytes need --program"), std::string::npos) << alone.err;
    Result word = run("--config configs/minimal.json --program x.kpu --train-bytes many");
    EXPECT_NE(word.exit_code, 0);
    EXPECT_EQ(lines(word.err), 1) << word.err;
    EXPECT_NE(word.err.find("train-bytes"), std::string::npos) << word.err;
}

}  // namespace
