// Runs the real kpu-sim binary the way a user or a script does and checks exit codes and
// the one-line messages.
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>

#include <cmath>
#include <vector>

#include <gtest/gtest.h>

#include "sc_main/npy.h"
#include "tests/support/config.h"
#include "tests/support/files.h"
#include "tests/support/graphs.h"
#include "tests/support/run_tool.h"

namespace {

using kpu::test::slurp;
using Result = kpu::test::ToolRun;

/// kpu-sim ARGS from the source root (relative paths are the repository's files).
Result run(const std::string& args) {
    return kpu::test::run_command("cd " KPU_SOURCE_DIR " && " KPU_BINARY_DIR "/bin/kpu-sim " + args, "kpu_cli_");
}

int lines(const std::string& text) { return int(std::count(text.begin(), text.end(), '\n')); }

/// kpu-sim ARGS is refused with one line on stderr that contains `part`.
void expect_one_line_error(const std::string& args, const std::string& part) {
    SCOPED_TRACE(args);
    Result r = run(args);
    EXPECT_NE(r.exit_code, 0);
    EXPECT_EQ(lines(r.err), 1) << r.err;
    EXPECT_NE(r.err.find(part), std::string::npos) << r.err;
}

/// Compiles C[m x n] = A[m x k] B[k x n] for t64 into dir/mm.kpu (dir is created); returns
/// kpu-compile's stdout.
std::string compile_matmul(const std::string& dir, int m, int k, int n) {
    if (std::system(("mkdir -p " + dir).c_str()) != 0) return "mkdir failed";
    std::ofstream(dir + "mm.json") << kpu::test::matmul_json(m, n, k);
    const Result r = kpu::test::run_command("cd " KPU_SOURCE_DIR " && " KPU_BINARY_DIR "/bin/kpu-compile " + dir +
                                                "mm.json -o " + dir + "mm.kpu --config configs/t64.json",
                                            "kpu_cli_compile_");
    return (r.exit_code == 0 ? "" : "kpu-compile failed: ") + r.out;
}

TEST(KpuSimCli, DescribePrintsDerivedFigures) {
    Result r = run("--config configs/roofline-ref.json --describe");
    EXPECT_EQ(r.exit_code, 0) << r.err;
    EXPECT_NE(r.out.find("1.024 TFLOP/s"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("ridge point (memory)        16.00 FLOP/byte"), std::string::npos) << r.out;
    // The mover window's two terms (docs/config.md, Derived figures).
    EXPECT_NE(r.out.find("longest mover path          83.5 ns"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("DRAM interleave span        1024 ns"), std::string::npos) << r.out;
    // With 1 of its DMA engines the memory roof, and so the ridge, follows the DMA engine.
    Result one = run("--config configs/roofline-ref.json --set dma.engines=1 --describe");
    EXPECT_NE(one.out.find("ridge point (memory)        64.00 FLOP/byte"), std::string::npos) << one.out;
}

TEST(KpuSimCli, MissingConfigFileIsOneLine) {
    Result r = run("--config configs/does-not-exist.json --describe");
    EXPECT_NE(r.exit_code, 0);
    EXPECT_EQ(r.err, "kpu-sim: error: configs/does-not-exist.json: cannot open config file\n");
}

TEST(KpuSimCli, TypoInAKeyIsOneLine) {
    const std::string path = ::testing::TempDir() + "typo.json";
    std::string text = slurp(kpu::test::config_path("minimal"));
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
    expect_one_line_error("--config configs/minimal.json --frobnicate", "frobnicate");
}

TEST(KpuSimCli, TrainBytesNeedsAProgramAndANumber) {
    const std::pair<std::string, std::string> cases[] = {
        {"--describe --train-bytes 0", "--train-bytes, --progress and --single-thread need --program"},
        {"--program x.kpu --train-bytes many", "train-bytes"},
    };
    for (const auto& [args, part] : cases) expect_one_line_error("--config configs/minimal.json " + args, part);
}

TEST(KpuSimCli, NonsenseArgumentsAreRefusedNotIgnored) {
    // Each of these is an error, not a run with exit 0: -1 is not read as 2^64 - 1, stray
    // words are not dropped, a missing --inputs directory does not mean random data.
    const std::pair<std::string, std::string> cases[] = {
        {"--program x.kpu --seed -1", "kpu-sim: error: --seed -1: expected a whole number from 0 to 18446744073709551615\n"},
        {"--program x.kpu --train-bytes -1",
         "kpu-sim: error: --train-bytes -1: expected a whole number from 0 to 1073741824\n"},
        {"--program x.kpu stray words",
         "kpu-sim: error: too many positional options have been specified on the command line (see kpu-sim --help)\n"},
    };
    for (const auto& [args, expected] : cases) {
        Result r = run("--config configs/minimal.json " + args);
        EXPECT_NE(r.exit_code, 0) << args;
        EXPECT_EQ(r.err, expected) << args;
    }
    const std::string dir = ::testing::TempDir() + "kpu_cli_nonsense/";
    ASSERT_EQ(compile_matmul(dir, 8, 8, 8).rfind("compiled", 0), 0u);
    Result r = run("--config configs/minimal.json --program " + dir + "mm.kpu --inputs /no/such/dir");
    EXPECT_NE(r.exit_code, 0);
    EXPECT_EQ(r.err, "kpu-sim: error: --inputs /no/such/dir: no such directory\n");
}

// What a run writes at its end is checked before it starts (a typo in --vcd-scope or
// --stats is not reported after the whole simulation), and nothing is written.
TEST(KpuSimCli, OutputPathsAndScopesAreCheckedBeforeTheRun) {
    const std::string dir = ::testing::TempDir() + "kpu_cli_outputs/";
    ASSERT_EQ(compile_matmul(dir, 8, 8, 8).rfind("compiled", 0), 0u);
    std::ofstream(dir + "afile") << "x";
    std::remove((dir + "v.vcd").c_str());  // from an earlier run of this test
    const std::string program = "--config configs/t64.json --program " + dir + "mm.kpu ";
    const std::pair<std::string, std::string> cases[] = {
        {"--vcd " + dir + "v.vcd --vcd-scope 'kpu.tile_63.*'",  // the program uses tile 0 only
         "kpu-sim: error: --vcd-scope kpu.tile_63.*: no scope matches (scopes look like kpu.tile_0.bm_0)\n"},
        {"--stats /no/such/dir/s.json", "kpu-sim: error: --stats /no/such/dir/s.json: no such directory /no/such/dir\n"},
        {"--trace " + dir, "kpu-sim: error: --trace " + dir + ": is a directory\n"},
        {"--outputs " + dir + "afile",
         "kpu-sim: error: --outputs " + dir + "afile: cannot create the directory (a file of that name exists)\n"},
        {"--inputs " + dir + "afile", "kpu-sim: error: --inputs " + dir + "afile: not a directory\n"},
    };
    for (const auto& [args, expected] : cases) {
        Result r = run(program + args);
        EXPECT_EQ(r.exit_code, 1) << args;
        EXPECT_EQ(r.err, expected) << args;
        EXPECT_EQ(r.out, "") << args << ": the run started";
    }
    std::ifstream vcd(dir + "v.vcd");
    EXPECT_FALSE(vcd.good()) << "a VCD was written";
    Result ok = run(program + "--vcd " + dir + "v.vcd --vcd-scope 'kpu.tile_0.*'");
    EXPECT_EQ(ok.exit_code, 0) << ok.err;
    EXPECT_EQ(ok.err, "");
    // The stats name engines without "kpu." (tile_0.bm_0): a glob copied from there works too.
    Result stats_name = run(program + "--vcd " + dir + "v2.vcd --vcd-scope 'tile_0.*'");
    EXPECT_EQ(stats_name.exit_code, 0) << stats_name.err;
    // A window after the run's end can only be known afterwards: a warning, not silence.
    Result late = run(program + "--vcd " + dir + "late.vcd --vcd-window 1s:");
    EXPECT_EQ(late.exit_code, 0) << late.err;
    EXPECT_EQ(late.err.rfind("kpu-sim: warning: --vcd-window starts at 1e+06 us, after the run ended (", 0), 0u)
        << late.err;
}

// With --inputs, a file that feeds nothing and a tensor that got random data are named
// ('a.npy' for tensor A must not leave A silently on random data).
TEST(KpuSimCli, InputsThatFeedNothingAndTensorsLeftRandomAreNamed) {
    const std::string dir = ::testing::TempDir() + "kpu_cli_inputs/";
    ASSERT_EQ(compile_matmul(dir, 8, 8, 8).rfind("compiled", 0), 0u);
    const std::vector<float> data(64, 1.0f);
    kpu::cli::write_npy(dir + "a.npy", {8, 8}, data.data());
    kpu::cli::write_npy(dir + "B.npy", {8, 8}, data.data());
    kpu::cli::write_npy(dir + "C.npy", {8, 8}, data.data());
    Result r = run("--config configs/t64.json --program " + dir + "mm.kpu --inputs " + dir + " --seed 5");
    EXPECT_EQ(r.exit_code, 0) << r.err;
    EXPECT_EQ(r.err, "kpu-sim: warning: --inputs " + dir + ": C.npy is tensor 'C', an output (only inputs and "
                     "constants are read)\n"
                     "kpu-sim: warning: --inputs " + dir + ": a.npy matches no input or constant (did you mean A.npy?)\n"
                     "kpu-sim: warning: --inputs " + dir + ": no file for A: seeded random data (--seed 5)\n");
}

// At long K the tolerance exceeds a single product, and the check line says that its
// verdict is weaker there. The tolerance is about 2 K^2 2^-24 average products:
// K = 4096 is over the line (2.0); K = 2048 (0.5) and the 8x8x8 runs above are not.
TEST(KpuSimCli, TheCheckSaysWhenKIsTooLongToSeeOneMissingProduct) {
    const std::string dir = ::testing::TempDir() + "kpu_cli_longk/";
    ASSERT_EQ(compile_matmul(dir, 1, 4096, 1).rfind("compiled", 0), 0u);
    Result r = run("--config configs/t64.json --program " + dir + "mm.kpu --check");
    EXPECT_EQ(r.exit_code, 0) << r.err;
    EXPECT_NE(r.out.find("; weak: the tolerance reaches 2 x an average product of the op's sums, so a missing "
                         "product could pass\n"),
              std::string::npos)
        << r.out;
    const std::string short_dir = ::testing::TempDir() + "kpu_cli_shortk/";
    ASSERT_EQ(compile_matmul(short_dir, 1, 2048, 1).rfind("compiled", 0), 0u);
    Result s = run("--config configs/t64.json --program " + short_dir + "mm.kpu --check");
    EXPECT_EQ(s.exit_code, 0) << s.err;
    EXPECT_EQ(s.out.find("weak"), std::string::npos) << s.out;
}

// Carried from layer to layer, the tolerance of a 5-layer chain would reach the output's own
// size (an all-zero output would pass). So every computed tensor is read back and each op is
// checked on the operands the hardware used: one line per op, none of them weak.
TEST(KpuSimCli, EachOpOfAChainIsCheckedOnTheOperandsTheHardwareUsed) {
    const std::string dir = ::testing::TempDir() + "kpu_cli_chain/";
    ASSERT_EQ(std::system(("mkdir -p " + dir).c_str()), 0);
    {
        std::ofstream graph(dir + "chain.json");
        graph << R"({"tensors": [{"name": "x", "shape": [37, 129], "dtype": "float32", "role": "input"})";
        const int widths[] = {129, 257, 61, 9, 65, 3};
        for (int l = 0; l < 5; ++l)
            graph << R"(, {"name": "w)" << l << R"(", "shape": [)" << widths[l] << ", " << widths[l + 1]
                  << R"(], "dtype": "float32", "role": "constant"}, {"name": "h)" << l << R"(", "dtype": "float32"})";
        graph << R"(], "ops": [)";
        for (int l = 0; l < 5; ++l)
            graph << (l ? ", " : "") << R"({"name": "l)" << l << R"(", "op": "matmul", "A": ")"
                  << (l ? "h" + std::to_string(l - 1) : std::string("x")) << R"(", "B": "w)" << l << R"(", "C": "h)" << l
                  << R"(", "activation": ")" << (l % 2 ? "gelu" : "relu") << R"("})";
        graph << "]}";
    }
    const std::string compile = "cd " KPU_SOURCE_DIR " && " KPU_BINARY_DIR "/bin/kpu-compile " + dir +
                                "chain.json -o " + dir + "chain.kpu --config configs/edge.json >/dev/null";
    ASSERT_EQ(std::system(compile.c_str()), 0);
    Result r = run("--config configs/edge.json --program " + dir + "chain.kpu --check");
    EXPECT_EQ(r.exit_code, 0) << r.err;
    for (int l = 0; l < 5; ++l) {
        const std::string name = "    h" + std::to_string(l) + " [37, ";
        const size_t at = r.out.find(name);
        ASSERT_NE(at, std::string::npos) << name << " in " << r.out;
        const std::string line = r.out.substr(at, r.out.find('\n', at) - at);
        EXPECT_EQ(line.find(" (intermediate): ok ") != std::string::npos, l < 4) << line;
        // Carried through the chain, h4's tolerance reached 150 average products of its sums.
        EXPECT_EQ(line.find("weak"), std::string::npos) << "a single missing product must fail: " << line;
    }
}

// A program compiled for t64 runs on edge (and one for edge on 4 of t64's 64 tiles), with a
// note saying whose tiling it carries, so a sweep does not compare tilings unawares. The
// .kpu records the --set overrides it was compiled with, so a sweep point counts too.
TEST(KpuSimCli, AProgramCompiledForAnotherConfigRunsWithANote) {
    const std::string dir = ::testing::TempDir() + "kpu_cli_target/";
    ASSERT_EQ(compile_matmul(dir, 64, 64, 64).rfind("compiled", 0), 0u);
    Result on_edge = run("--config configs/edge.json --program " + dir + "mm.kpu");
    EXPECT_EQ(on_edge.exit_code, 0) << on_edge.err;
    EXPECT_EQ(on_edge.err, "kpu-sim: note: " + dir + "mm.kpu was compiled for 't64' (64 tiles of 16x16), not for "
                           "'edge' (4 tiles of 16x16): it runs, with the tiling chosen for the former; recompile for "
                           "this config to compare configs\n");
    Result on_t64 = run("--config configs/t64.json --program " + dir + "mm.kpu");
    EXPECT_EQ(on_t64.exit_code, 0) << on_t64.err;
    EXPECT_EQ(on_t64.err, "");
    // Compiled for a sweep point, run on the stock SKU and on the same point.
    const std::string point = "--set l1.capacity_kib=8";
    const std::string compile = "cd " KPU_SOURCE_DIR " && " KPU_BINARY_DIR "/bin/kpu-compile " + dir + "mm.json -o " +
                                dir + "point.kpu --config configs/t64.json " + point + " >/dev/null";
    ASSERT_EQ(std::system(compile.c_str()), 0);
    Result stock = run("--config configs/t64.json --program " + dir + "point.kpu");
    EXPECT_EQ(stock.err, "kpu-sim: note: " + dir + "point.kpu was compiled for 't64' --set l1.capacity_kib=8 (64 tiles "
                         "of 16x16), not for 't64' (64 tiles of 16x16): it runs, with the tiling chosen for the "
                         "former; recompile for this config to compare configs\n");
    Result same = run("--config configs/t64.json " + point + " --program " + dir + "point.kpu");
    EXPECT_EQ(same.err, "");
}

// A program whose tiles do not fit the config it runs on is re-blocked by the binder (t64's
// 128x64 tiles of the seed-0 matmul on minimal); -v says so and gives the replay's estimate,
// and --check passes.
TEST(KpuSimCli, VerboseSaysWhatWasReblockedAndTheReplaysEstimate) {
    const std::string dir = ::testing::TempDir() + "kpu_cli_reblock/";
    ASSERT_EQ(compile_matmul(dir, 1024, 512, 1024).rfind("compiled", 0), 0u);
    Result r = run("--config configs/minimal.json --program " + dir + "mm.kpu --check -v");
    EXPECT_EQ(r.exit_code, 0) << r.err;
    EXPECT_EQ(r.out.rfind("op 'matmul': tile 128x64x128 re-blocked to ", 0), 0u) << r.out;
    EXPECT_NE(r.out.find(" for minimal: "), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("\nkpu-sim: bound to 'minimal', replayed: "), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("  check             PASS"), std::string::npos) << r.out;
    Result quiet = run("--config configs/minimal.json --program " + dir + "mm.kpu");
    EXPECT_EQ(quiet.exit_code, 0) << quiet.err;
    EXPECT_EQ(quiet.out.find("re-blocked"), std::string::npos) << quiet.out;
}

TEST(KpuSimCli, TheSummaryNamesTheBindingRoofAndTheBusiestResources) {
    const std::string dir = ::testing::TempDir() + "kpu_cli_busiest/";
    ASSERT_EQ(compile_matmul(dir, 256, 256, 256).rfind("compiled", 0), 0u);
    Result r = run("--config configs/t64.json --set dma.engines=2 --program " + dir + "mm.kpu");
    EXPECT_EQ(r.exit_code, 0) << r.err;
    EXPECT_NE(r.out.find("(memory: DRAM bytes at 96 GB/s; efficiency "), std::string::npos) << r.out;
    const size_t at = r.out.find("  busiest           ");
    ASSERT_NE(at, std::string::npos) << r.out;
    const std::string line = r.out.substr(at, r.out.find('\n', at) - at);
    EXPECT_EQ(line.find("  busiest           dma busy "), 0u) << line;
    // Three entries, largest first.
    std::vector<double> shares;
    for (size_t p = line.find(" %"); p != std::string::npos; p = line.find(" %", p + 1))
        shares.push_back(std::stod(line.substr(line.rfind(' ', p - 1) + 1)));
    ASSERT_EQ(shares.size(), 3u) << line;
    EXPECT_TRUE(std::is_sorted(shares.rbegin(), shares.rend())) << line;
}

// NaN and Inf in the inputs propagate through the fabric as IEEE arithmetic says; --check
// counts an element NaN in both (or the same infinity in both) as matching, and a NaN where
// the reference is finite as a mismatch.
TEST(KpuSimCli, NaNAndInfInTheInputsAreCheckedLikeNumpysEqualNan) {
    const std::string dir = ::testing::TempDir() + "kpu_cli_nan/";
    ASSERT_EQ(compile_matmul(dir, 8, 8, 8).rfind("compiled", 0), 0u);
    std::vector<float> a(64), b(64);
    for (int i = 0; i < 64; ++i) a[size_t(i)] = float(i % 7) - 3.0f, b[size_t(i)] = 0.5f + float(i % 5);
    a[2 * 8 + 3] = NAN;       // row 2 of C: NaN in all 8 columns
    a[5 * 8 + 0] = INFINITY;  // row 5: B is positive, so +Inf in all 8
    kpu::cli::write_npy(dir + "A.npy", {8, 8}, a.data());
    kpu::cli::write_npy(dir + "B.npy", {8, 8}, b.data());
    Result r = run("--config configs/t64.json --program " + dir + "mm.kpu --inputs " + dir + " --outputs " + dir +
                   "out --check");
    EXPECT_EQ(r.exit_code, 0) << r.out << r.err;
    EXPECT_NE(r.out.find("check             PASS"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("; 16 elements NaN or Inf in both"), std::string::npos) << r.out;
    const kpu::cli::NpyArray c = kpu::cli::read_npy(dir + "out/C.npy");
    ASSERT_EQ(c.data.size(), 64u);
    for (int j = 0; j < 8; ++j) {
        EXPECT_TRUE(std::isnan(c.data[size_t(2 * 8 + j)])) << j;
        EXPECT_EQ(c.data[size_t(5 * 8 + j)], INFINITY) << j;
        EXPECT_TRUE(std::isfinite(c.data[size_t(j)])) << j;
    }
}

// Finite inputs whose products exceed fp32's range: the fabric's result is infinite, the
// double-precision reference's is not. That is a real mismatch, and the line says why.
TEST(KpuSimCli, AnFp32OverflowIsAMismatchThatSaysSo) {
    const std::string dir = ::testing::TempDir() + "kpu_cli_overflow/";
    ASSERT_EQ(compile_matmul(dir, 8, 8, 8).rfind("compiled", 0), 0u);
    auto check = [&](const std::vector<float>& a, const std::vector<float>& b) {
        kpu::cli::write_npy(dir + "A.npy", {8, 8}, a.data());
        kpu::cli::write_npy(dir + "B.npy", {8, 8}, b.data());
        Result r = run("--config configs/t64.json --program " + dir + "mm.kpu --inputs " + dir + " --check");
        EXPECT_EQ(r.exit_code, 4) << r.out << r.err;
        return r.err;
    };
    std::vector<float> a(64, 1.0f), b(64, 1.0f);
    a[3 * 8 + 1] = 3e38f, b[1 * 8 + 6] = 2.0f;  // C[3][6] = 6e38 + 7: beyond 3.4e38
    const std::string beyond = check(a, b);
    EXPECT_NE(beyond.find("kpu-sim: check failed: C [8, 8]: MISMATCH in 1 elements; worst at [3, 6]: simulated inf, "
                          "reference 6.00000001e+38"),
              std::string::npos)
        << beyond;
    EXPECT_NE(beyond.find("(the reference is beyond fp32's range: the fp32 hardware overflowed)"), std::string::npos)
        << beyond;
    // Partial sums that pass 3.4e38 and come back (3e38 + 3e38 - 3e38 - 3e38, in
    // the fabric's order) are infinite or NaN in fp32 while the reference is 0 or finite:
    // the line says why there too.
    std::vector<float> a2(64, 0.0f);
    const float row[8] = {3e38f, 3e38f, -3e38f, -3e38f, 0, 0, 0, 0};
    std::copy(row, row + 8, a2.begin());
    const std::string partial = check(a2, std::vector<float>(64, 1.0f));
    EXPECT_NE(partial.find("(a product or partial sum passed fp32's range, 3.4e38: the fp32 hardware overflowed, in "
                           "this order of summation)"),
              std::string::npos)
        << partial;
}

// The seed goes into the hash after the tensor's name: XORed in before it, tensors 'A' and
// 'B' would swap their data between --seed 1 and --seed 2, and a dot product would come out
// bit for bit the same.
TEST(KpuSimCli, EverySeedGivesEveryTensorItsOwnData) {
    const std::string dir = ::testing::TempDir() + "kpu_cli_seeds/";
    ASSERT_EQ(std::system(("mkdir -p " + dir + "s1 " + dir + "s2 " + dir + "s1again").c_str()), 0);
    ASSERT_EQ(compile_matmul(dir, 1, 64, 1).rfind("compiled", 0), 0u);
    for (const auto& [seed, out] : {std::pair{"1", "s1"}, {"2", "s2"}, {"1", "s1again"}})
        ASSERT_EQ(run("--config configs/t64.json --program " + dir + "mm.kpu --seed " + seed + " --outputs " + dir + out).exit_code, 0);
    EXPECT_NE(slurp(dir + "s1/C.npy"), slurp(dir + "s2/C.npy"));
    EXPECT_EQ(slurp(dir + "s1/C.npy"), slurp(dir + "s1again/C.npy"));
}

// Helper threads (the default: the fabrics' arithmetic and the reference beside the
// simulation) or none (--single-thread): two processes, the same bytes in every output and
// the same cycles, and --check passes in both. A t64 matmul with K in two passes: its 20
// fabrics overlap and carry their accumulators from one MATMUL to the next.
TEST(KpuSimCli, HelperThreadsGiveTheSingleThreadOutputsAndCycles) {
    const std::string dir = ::testing::TempDir() + "kpu_cli_helper_threads/";
    ASSERT_EQ(std::system(("mkdir -p " + dir + "on " + dir + "off").c_str()), 0);
    const std::string compiled = compile_matmul(dir, 512, 1024, 640);
    ASSERT_NE(compiled.find("K in 2 passes"), std::string::npos) << compiled;
    for (const char* mode : {"on", "off"}) {
        Result r = run("--config configs/t64.json --program " + dir + "mm.kpu --check --outputs " + dir + mode +
                       " --stats " + dir + mode + "/stats.json" +
                       (std::string(mode) == "off" ? " --single-thread" : ""));
        ASSERT_EQ(r.exit_code, 0) << mode << ": " << r.err;
        EXPECT_NE(r.out.find("check             PASS"), std::string::npos) << mode << ": " << r.out;
    }
    const std::string on = slurp(dir + "on/C.npy"), off = slurp(dir + "off/C.npy");
    EXPECT_GT(on.size(), 512u * 640 * 4);
    EXPECT_TRUE(on == off) << "C differs between helper threads and --single-thread";
    auto cycles = [](const std::string& stats) {
        const size_t at = stats.find("\"total_cycles\":");
        return at == std::string::npos ? std::string("missing") : stats.substr(at, stats.find_first_of(",}", at) - at);
    };
    EXPECT_NE(cycles(slurp(dir + "on/stats.json")), "missing");
    EXPECT_EQ(cycles(slurp(dir + "on/stats.json")), cycles(slurp(dir + "off/stats.json")));
}

TEST(KpuSimCli, ProgressPrintsLinesOnStderrWhileTheProgramRuns) {
    const std::string dir = ::testing::TempDir() + "kpu_cli_progress/";
    const std::string compiled = compile_matmul(dir, 512, 512, 512);
    ASSERT_EQ(compiled.find("failed"), std::string::npos) << compiled;
    Result r = run("--config configs/t64.json --program " + dir + "mm.kpu --progress 0.001");
    ASSERT_EQ(r.exit_code, 0) << r.err;
    // The run takes tens of milliseconds: many lines, every one of them well formed; the
    // summary on stdout is as without --progress.
    EXPECT_GE(lines(r.err), 1) << r.err;
    std::istringstream err(r.err);
    std::string line;
    int running = 0;  // lines with the program's figures (the run phase is most of the run)
    while (std::getline(err, line)) {
        const bool figures = line.rfind("kpu-sim: ", 0) == 0 && line.find(" % of 1760 ops, ") != std::string::npos;
        running += figures;
        EXPECT_TRUE(figures || line.rfind("kpu-sim: starting the program, ", 0) == 0) << line;
    }
    EXPECT_GE(running, 1) << r.err;
    EXPECT_NE(r.out.find("ops               1760"), std::string::npos) << r.out;

    for (const char* bad : {"--progress 0", "--progress=-1", "--progress soon"})
        expect_one_line_error("--config configs/t64.json --program " + dir + "mm.kpu " + bad, "progress");
    Result alone = run("--config configs/t64.json --describe --progress");
    EXPECT_NE(alone.exit_code, 0);
    EXPECT_NE(alone.err.find("--progress and --single-thread need --program"), std::string::npos) << alone.err;
}

}  // namespace
