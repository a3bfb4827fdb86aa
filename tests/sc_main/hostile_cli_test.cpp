// kpu-sim and kpu-sim's .npy files against hostile inputs and a hostile file system: header
// fields of any length or form, a FIFO or a directory where a file is expected, and every
// output file on a full device (a symlink to /dev/full), which must fail naming the file,
// never exit 0 with the result lost.
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "sc_main/npy.h"
#include "tests/support/files.h"
#include "tests/support/graphs.h"
#include "tests/support/run_tool.h"

namespace kpu::cli {
namespace {

using test::temp;

/// A .npy file (version 1.0, or 2.0 when the header is too long for 1.0's 16-bit length)
/// with `header` and `data_bytes` zero bytes.
void write_raw_npy(const std::string& path, const std::string& header, size_t data_bytes) {
    std::ofstream out(path, std::ios::binary);
    if (header.size() < 65536) {
        out << std::string("\x93NUMPY\x01\x00", 8) << char(header.size() & 0xff) << char(header.size() >> 8);
    } else {
        const uint32_t n = uint32_t(header.size());
        out << std::string("\x93NUMPY\x02\x00", 8) << char(n & 0xff) << char((n >> 8) & 0xff) << char((n >> 16) & 0xff)
            << char(n >> 24);
    }
    out << header << std::string(data_bytes, '\0');
}

std::string header_with_shape(const std::string& shape) {
    return "{'descr': '<f4', 'fortran_order': False, 'shape': (" + shape + "), }";
}

std::string npy_error(const std::string& path) {
    try {
        read_npy(path);
    } catch (const NpyError& e) {
        return e.what();
    }
    return "accepted";
}

TEST(NpyHeader, DimensionsThatAreNotNonNegativeIntegersAreRefusedNamingTheValue) {
    const std::pair<std::string, std::string> cases[] = {
        {"-2, -3", "header field 'shape': dimension '-2' is not a non-negative integer (shape (-2, -3))"},
        {"2 3", "header field 'shape': dimension '2 3' is not a non-negative integer (shape (2 3))"},
        {"2.0, 3.0", "header field 'shape': dimension '2.0' is not a non-negative integer (shape (2.0, 3.0))"},
        {"2,, 3", "header field 'shape': dimension '' is not a non-negative integer (shape (2,, 3))"},
    };
    for (const auto& [shape, problem] : cases) {
        write_raw_npy(temp("dims.npy"), header_with_shape(shape), 24);
        EXPECT_EQ(npy_error(temp("dims.npy")), temp("dims.npy") + ": " + problem) << shape;
    }
    // What numpy writes still reads: a 1-tuple's trailing comma, a scalar's (), any spacing.
    write_raw_npy(temp("ok.npy"), "{'descr':'<f4','fortran_order':False,'shape':( 2 , 3 ,)}   \n", 24);
    EXPECT_EQ(read_npy(temp("ok.npy")).shape, (std::vector<uint64_t>{2, 3}));
    write_raw_npy(temp("scalar.npy"), header_with_shape(""), 4);
    EXPECT_EQ(read_npy(temp("scalar.npy")).shape, std::vector<uint64_t>{});
}

TEST(NpyHeader, FieldsOf15000CharactersAreReadInOnePass) {
    write_raw_npy(temp("descr.npy"), "{'descr': '" + std::string(15000, 'f') + "', 'fortran_order': False, 'shape': (2,), }", 8);
    EXPECT_EQ(npy_error(temp("descr.npy")),
              temp("descr.npy") + ": dtype '" + std::string(15000, 'f') +
                  "' is not supported; expected float32 ('<f4'), e.g. a.astype(np.float32)");
    std::string dims;
    for (int i = 0; i < 7500; ++i) dims += "1,";
    write_raw_npy(temp("shape.npy"), header_with_shape(dims), 4);
    EXPECT_EQ(read_npy(temp("shape.npy")).shape, std::vector<uint64_t>(7500, 1));
    write_raw_npy(temp("spaces.npy"), "{'descr': '<f4', 'fortran_order': False, 'shape': (2," + std::string(15000, ' ') + "3), }", 24);
    EXPECT_EQ(read_npy(temp("spaces.npy")).shape, (std::vector<uint64_t>{2, 3}));
}

TEST(NpyHeader, AMalformedHeaderIsRefusedWithWhereItGoesWrong) {
    const std::pair<std::string, std::string> cases[] = {
        {"'descr': '<f4'}", "header is not a dict at header byte 0"},
        {"{'descr': '<f4', 'fortran_order': false, 'shape': (2,)}",
         "header field 'fortran_order': True or False expected at header byte 34"},
        {"{'descr': '<f4', 'fortran_order': False, 'shape': (2,), 'extra': 1}",
         "header field 'extra' is not one of 'descr', 'fortran_order', 'shape'"},
        {"{'descr': '<f4', 'fortran_order': False, 'shape': (2,)} x", "header: text after the dict at header byte 56"},
        {"{'descr': '<f4', 'fortran_order': False}", "header has no 'shape'"},
        {"{'descr': '<f4' 'shape': (2,)}", "header: ',' or '}' expected at header byte 16"},
    };
    for (const auto& [header, problem] : cases) {
        write_raw_npy(temp("bad_header.npy"), header, 8);
        EXPECT_EQ(npy_error(temp("bad_header.npy")), temp("bad_header.npy") + ": " + problem) << header;
    }
}

TEST(NpyHeader, ADirectoryOrAFifoIsNotReadAsANpyFile) {
    const std::string dir = temp("dir_as.npy");
    ::mkdir(dir.c_str(), 0755);
    EXPECT_EQ(npy_error(dir), dir + ": is a directory, not a .npy file");
    const std::string fifo = temp("fifo.npy");
    std::remove(fifo.c_str());
    ASSERT_EQ(::mkfifo(fifo.c_str(), 0644), 0);
    EXPECT_EQ(npy_error(fifo), fifo + ": is not a regular file (a FIFO, a device or a socket), not a .npy file");
}

TEST(NpyWrite, AFullDeviceIsAnErrorNamingTheFile) {
    const std::vector<float> data(6, 1.0f);
    try {
        write_npy("/dev/full", {2, 3}, data.data());
        FAIL() << "wrote to a full device";
    } catch (const NpyError& e) {
        EXPECT_EQ(std::string(e.what()), "/dev/full: write failed (No space left on device)");
    }
}

/// kpu-sim ARGS from the source root.
test::ToolRun kpu_sim(const std::string& args) {
    return test::run_command("cd " KPU_SOURCE_DIR " && " KPU_BINARY_DIR "/bin/kpu-sim " + args, "kpu_hostile_");
}

/// dir/mm.kpu: an 8x8x8 matmul for t64 (inputs A, B; output C).
void compile_small_matmul(const std::string& dir) {
    ASSERT_EQ(std::system(("mkdir -p " + dir).c_str()), 0);
    std::ofstream(dir + "mm.json") << test::matmul_json(8, 8, 8);
    const test::ToolRun r = test::run_command("cd " KPU_SOURCE_DIR " && " KPU_BINARY_DIR "/bin/kpu-compile " + dir +
                                                  "mm.json -o " + dir + "mm.kpu --config configs/t64.json",
                                              "kpu_hostile_compile_");
    ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
}

TEST(KpuSimOutputs, EveryOutputOnAFullDeviceFailsNamingTheFile) {
    const std::string dir = ::testing::TempDir() + "kpu_hostile_outputs/";
    compile_small_matmul(dir);
    const std::string full = dir + "full";  // in a writable directory, unlike /dev/full itself
    std::remove(full.c_str());
    ASSERT_EQ(::symlink("/dev/full", full.c_str()), 0);
    ASSERT_EQ(std::system(("rm -rf " + dir + "out && mkdir " + dir + "out && ln -s /dev/full " + dir + "out/C.npy").c_str()), 0);
    const std::string program = "--config configs/t64.json --program " + dir + "mm.kpu ";
    const std::pair<std::string, std::string> cases[] = {
        {"--stats " + full, full + ": write failed (No space left on device)"},
        {"--vcd " + full, full + ": write failed (No space left on device)"},
        {"--trace " + full, full + ": write failed (No space left on device)"},
        {"--outputs " + dir + "out", dir + "out/C.npy: write failed (No space left on device)"},
    };
    for (const auto& [args, message] : cases) {
        const test::ToolRun r = kpu_sim(program + args);
        EXPECT_EQ(r.exit_code, 1) << args << "\n" << r.err;
        EXPECT_EQ(r.err, "kpu-sim: error: " + message + "\n") << args;
    }
}

TEST(KpuSimInputs, AFifoOrADirectoryAmongTheInputsIsNamed) {
    const std::string dir = ::testing::TempDir() + "kpu_hostile_inputs/";
    compile_small_matmul(dir);
    ASSERT_EQ(std::system(("rm -rf " + dir + "in && mkdir -p " + dir + "in/A.npy && mkfifo " + dir + "in/B.npy").c_str()), 0);
    const test::ToolRun r = kpu_sim("--config configs/t64.json --program " + dir + "mm.kpu --inputs " + dir + "in");
    EXPECT_EQ(r.exit_code, 1) << r.err;
    EXPECT_EQ(r.err, "kpu-sim: error: " + dir + "mm.kpu on t64: " + dir + "in/A.npy: is a directory, not a .npy file\n");
    // A FIFO with no writer would block the run forever: it is named instead.
    ASSERT_EQ(std::system(("rm -rf " + dir + "in/A.npy").c_str()), 0);
    const std::vector<float> data(64, 1.0f);
    write_npy(dir + "in/A.npy", {8, 8}, data.data());
    const test::ToolRun fifo = kpu_sim("--config configs/t64.json --program " + dir + "mm.kpu --inputs " + dir + "in");
    EXPECT_EQ(fifo.exit_code, 1) << fifo.err;
    EXPECT_EQ(fifo.err, "kpu-sim: error: " + dir + "mm.kpu on t64: " + dir + "in/B.npy: is not a regular file (a FIFO, a device or a socket), "
                        "not a .npy file\n");
}

}  // namespace
}  // namespace kpu::cli
