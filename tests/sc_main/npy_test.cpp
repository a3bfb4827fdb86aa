#include "sc_main/npy.h"

#include <cstdio>
#include <cstdlib>
#include <fstream>

#include <gtest/gtest.h>

#include "tests/support/files.h"

namespace kpu::cli {
namespace {

using test::temp;

TEST(Npy, RoundTripKeepsShapeAndBytes) {
    std::vector<float> data = {1.5f, -2.0f, 3.25f, 0.0f, 1e-30f, 7.0f};
    write_npy(temp("a.npy"), {2, 3}, data.data());
    NpyArray back = read_npy(temp("a.npy"));
    EXPECT_EQ(back.shape, (std::vector<uint64_t>{2, 3}));
    EXPECT_EQ(back.data, data);
    write_npy(temp("v.npy"), {5}, data.data());
    EXPECT_EQ(read_npy(temp("v.npy")).shape, (std::vector<uint64_t>{5}));
}

TEST(Npy, NumpyReadsWhatWeWriteAndWeReadWhatNumpyWrites) {
    if (std::system("/usr/bin/python3 -c 'import numpy' 2>/dev/null") != 0) GTEST_SKIP() << "no numpy";
    std::vector<float> data = {1, 2, 3, 4, 5, 6};
    write_npy(temp("ours.npy"), {3, 2}, data.data());
    const std::string script =
        "import numpy as np\n"
        "a = np.load('" + temp("ours.npy") + "')\n"
        "assert a.dtype == np.float32 and a.shape == (3, 2) and a[2, 1] == 6, (a.dtype, a.shape)\n"
        "np.save('" + temp("theirs.npy") + "', (np.arange(12, dtype=np.float32) * 0.5).reshape(4, 3))\n";
    std::ofstream(temp("check.py")) << script;
    ASSERT_EQ(std::system(("/usr/bin/python3 " + temp("check.py")).c_str()), 0);
    NpyArray theirs = read_npy(temp("theirs.npy"));
    EXPECT_EQ(theirs.shape, (std::vector<uint64_t>{4, 3}));
    EXPECT_EQ(theirs.data[11], 5.5f);
}

void expect_error(const std::string& path, const std::string& expected) {
    try {
        read_npy(path);
        ADD_FAILURE() << "accepted " << path;
    } catch (const NpyError& e) {
        EXPECT_EQ(std::string(e.what()), path + ": " + expected);
    }
}

TEST(Npy, BadFilesAreRefusedWithTheReason) {
    expect_error(temp("missing.npy"), "cannot open .npy file");
    std::ofstream(temp("text.npy")) << "hello world";
    expect_error(temp("text.npy"), "not a .npy file (bad magic)");
    std::string header = "{'descr': '<f8', 'fortran_order': False, 'shape': (2,), }";
    std::ofstream f64(temp("f64.npy"), std::ios::binary);
    f64 << std::string("\x93NUMPY\x01\x00", 8) << char(header.size()) << char(0) << header << std::string(16, '\0');
    f64.close();
    expect_error(temp("f64.npy"), "dtype '<f8' is not supported; expected float32 ('<f4'), e.g. a.astype(np.float32)");
    std::vector<float> data(6, 1.0f);
    write_npy(temp("short.npy"), {2, 3}, data.data());
    std::ifstream in(temp("short.npy"), std::ios::binary);
    std::string bytes((std::istreambuf_iterator<char>(in)), {});
    std::ofstream(temp("short.npy"), std::ios::binary) << bytes.substr(0, bytes.size() - 4);
    expect_error(temp("short.npy"), "data ends early: shape [2, 3] needs 24 bytes, the file has 20");
    std::ofstream(temp("long.npy"), std::ios::binary) << bytes << "xyz";
    expect_error(temp("long.npy"), "3 bytes after the data: shape [2, 3] needs 24");
}

/// A version 1.0 header saying `shape`, followed by `data_bytes` zero bytes.
void write_header(const std::string& path, const std::string& shape, size_t data_bytes) {
    const std::string header = "{'descr': '<f4', 'fortran_order': False, 'shape': (" + shape + "), }";
    std::ofstream out(path, std::ios::binary);
    out << std::string("\x93NUMPY\x01\x00", 8) << char(header.size()) << char(0) << header << std::string(data_bytes, '\0');
}

TEST(Npy, HeadersThatLieAboutTheSizeAreRefusedBeforeAnythingIsAllocated) {
    // The header is checked against the file before anything is allocated: a 128-byte file
    // saying (32768, 32768) must not have kpu-sim allocate and clear 4 GiB first, and a
    // 23-digit dimension or 2^33 elements get a message, not "stoull" or bad_alloc.
    write_header(temp("huge.npy"), "32768, 32768", 16);
    expect_error(temp("huge.npy"), "data ends early: shape [32768, 32768] needs 4294967296 bytes, the file has 16");
    write_header(temp("digits.npy"), "99999999999999999999999, 33", 16);
    expect_error(temp("digits.npy"), "shape dimension 99999999999999999999999 is too large");
    write_header(temp("tib.npy"), "16384, 16384, 1025", 16);
    expect_error(temp("tib.npy"), "shape (16384, 16384, 1025) is more than 1 TiB of float32");
    // The caller's shape check runs on the header, before the data is read.
    write_header(temp("wrong.npy"), "4, 4", 64);
    try {
        read_npy(temp("wrong.npy"), [](const std::vector<uint64_t>& shape) {
            if (shape != std::vector<uint64_t>{2, 8}) throw NpyError("not [2, 8]");
        });
        ADD_FAILURE() << "accepted the wrong shape";
    } catch (const NpyError& e) {
        EXPECT_STREQ(e.what(), "not [2, 8]");
    }
}

}  // namespace
}  // namespace kpu::cli
