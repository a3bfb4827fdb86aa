// kpu-sim and kpu-sim's .npy files against hostile inputs and a hostile file system: header
// fields of any length or form, a FIFO or a directory where a file is expected.
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

}  // namespace
}  // namespace kpu::cli
