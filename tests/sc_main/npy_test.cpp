#include "sc_main/npy.h"

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>

#include <gtest/gtest.h>

#include "compiler/graph.h"
#include "hardware/numeric.h"
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

bool have_numpy() { return std::system("/usr/bin/python3 -c 'import numpy' 2>/dev/null") == 0; }

TEST(Npy, ReducedPrecisionTypesRoundTripThroughNumpy) {
    if (!have_numpy()) GTEST_SKIP() << "no numpy";
    const int8_t i8[] = {-128, -1, 0, 1, 127, 42};
    const int32_t i32[] = {-2147483647 - 1, -1, 0, 1, 2147483647, 16777217};
    const uint16_t f16[] = {0x3c00, 0xc000, 0x0001, 0x7bff, 0x7c00, 0x8000};  // 1, -2, smallest subnormal, max, inf, -0
    const uint16_t bf16[] = {0x3f80, 0xc000, 0x0001, 0x7f7f, 0x7f80, 0x8000};  // the same roles in bfloat16
    write_npy_data(temp("i8.npy"), {2, 3}, NpyType::Int8, i8);
    write_npy_data(temp("i32.npy"), {6}, NpyType::Int32, i32);
    write_npy_data(temp("f16.npy"), {3, 2}, NpyType::Float16, f16);
    write_npy_data(temp("bf16.npy"), {6}, NpyType::BFloat16, bf16);
    const std::string script =
        "import numpy as np\n"
        "d = '" + temp("") + "'\n"
        "a = np.load(d + 'i8.npy'); assert a.dtype == np.int8 and a.shape == (2, 3) and a.ravel().tolist() == [-128, -1, 0, 1, 127, 42], a\n"
        "a = np.load(d + 'i32.npy'); assert a.dtype == np.int32 and a.tolist() == [-2**31, -1, 0, 1, 2**31 - 1, 16777217], a\n"
        "a = np.load(d + 'f16.npy'); assert a.dtype == np.float16 and a.shape == (3, 2), a.dtype\n"
        "assert a.ravel().astype(np.float64).tolist() == [1, -2, 2.0**-24, 65504, np.inf, 0], a\n"
        "a = np.load(d + 'bf16.npy'); assert a.dtype == np.uint16, a.dtype\n"
        "f = (a.astype(np.uint32) << 16).view(np.float32).astype(np.float64).tolist()\n"
        "assert f == [1, -2, 2.0**-133, 2.0**127 * 255 / 128, np.inf, 0], f\n"
        "np.save(d + 'n_i8.npy', np.array([[-7, 8]], np.int8))\n"
        "np.save(d + 'n_i32.npy', np.array([-5, 2**30], np.int32))\n"
        "np.save(d + 'n_f16.npy', np.array([0.5, -65504, 6e-8], np.float16))\n"
        "np.save(d + 'n_bf16.npy', np.array([0x3f80, 0x4049], np.uint16))\n"
        "np.save(d + 'f64.npy', np.zeros(2))\n";
    std::ofstream(temp("types.py")) << script;
    ASSERT_EQ(std::system(("/usr/bin/python3 " + temp("types.py")).c_str()), 0);
    const NpyData a = read_npy_data(temp("n_i8.npy"));
    EXPECT_EQ(a.type, NpyType::Int8);
    EXPECT_EQ(a.shape, (std::vector<uint64_t>{1, 2}));
    EXPECT_EQ(npy_to_float(a), (std::vector<float>{-7, 8}));
    const NpyData b = read_npy_data(temp("n_i32.npy"));
    EXPECT_EQ(b.type, NpyType::Int32);
    EXPECT_EQ(npy_to_float(b), (std::vector<float>{-5, 1073741824.f}));
    const NpyData c = read_npy_data(temp("n_f16.npy"));
    EXPECT_EQ(c.type, NpyType::Float16);
    EXPECT_EQ(npy_to_float(c), (std::vector<float>{0.5f, -65504.f, hw::half_to_float(hw::float_to_half(6e-8f))}));
    const NpyData d = read_npy_data(temp("n_bf16.npy"));
    EXPECT_EQ(d.type, NpyType::BFloat16);
    EXPECT_EQ(npy_to_float(d), (std::vector<float>{1.0f, 3.140625f}));
    // kpu-sim's tensors are float32: its reader refuses the others, naming both dtypes.
    expect_error(temp("n_i8.npy"), "dtype '|i1' (int8) is not the tensor's float32 ('<f4'): kpu-sim runs float32 "
                                   "programs; a.astype(np.float32)");
    expect_error(temp("n_bf16.npy"), "dtype '<u2' (bfloat16) is not the tensor's float32 ('<f4'): kpu-sim runs "
                                     "float32 programs; a.astype(np.float32)");
    try {
        read_npy_data(temp("f64.npy"));
        ADD_FAILURE() << "accepted float64";
    } catch (const NpyError& e) {
        EXPECT_EQ(std::string(e.what()), temp("f64.npy") + ": dtype '<f8' is not supported; expected float32 ('<f4'), "
                                                           "float16 ('<f2'), bfloat16 as uint16 bit patterns ('<u2'), "
                                                           "int8 ('|i1') or int32 ('<i4')");
    }
}

TEST(Npy, ConversionsToFloat16AndBfloat16MatchNumpyBitForBit) {
    if (!have_numpy()) GTEST_SKIP() << "no numpy";
    // Float32 values: a sweep over every 4099th bit pattern (all exponents, NaNs, infinities),
    // every float16 and bfloat16 halfway point and its neighbours (the ties and near-ties).
    std::vector<float> x;
    for (uint64_t bits = 0; bits < (uint64_t(1) << 32); bits += 4099) x.push_back(hw::bits_float(uint32_t(bits)));
    for (uint32_t h = 0; h < 0x7c00; ++h)
        for (float sign : {1.0f, -1.0f}) {
            const float mid = sign * (hw::half_to_float(uint16_t(h)) + hw::half_to_float(uint16_t(h + 1))) / 2;
            x.insert(x.end(), {mid, std::nextafter(mid, 0.0f), std::nextafter(mid, sign * INFINITY)});
        }
    for (uint32_t b = 0; b < 0x7f80; ++b)
        for (uint32_t sign : {0u, 0x80000000u}) {
            const uint32_t mid = sign | b << 16 | 0x8000u;
            x.insert(x.end(), {hw::bits_float(mid), hw::bits_float(mid - 1), hw::bits_float(mid + 1)});
        }
    std::vector<uint16_t> f16(x.size()), bf16(x.size());
    for (size_t i = 0; i < x.size(); ++i) f16[i] = hw::float_to_half(x[i]), bf16[i] = hw::float_to_bfloat16(x[i]);
    // And back: every float16 and bfloat16 bit pattern as float32.
    std::vector<float> from_f16(65536), from_bf16(65536);
    for (uint32_t h = 0; h < 65536; ++h)
        from_f16[h] = hw::half_to_float(uint16_t(h)), from_bf16[h] = hw::bfloat16_to_float(uint16_t(h));
    write_npy(temp("conv_x.npy"), {x.size()}, x.data());
    write_npy_data(temp("conv_f16.npy"), {x.size()}, NpyType::Float16, f16.data());
    write_npy_data(temp("conv_bf16.npy"), {x.size()}, NpyType::BFloat16, bf16.data());
    write_npy(temp("conv_from_f16.npy"), {65536}, from_f16.data());
    write_npy(temp("conv_from_bf16.npy"), {65536}, from_bf16.data());
    const std::string script =
        "import numpy as np\n"
        "d = '" + temp("conv_") + "'\n"
        "x = np.load(d + 'x.npy')\n"
        "with np.errstate(all='ignore'):\n"
        "    want = x.astype(np.float16).view(np.uint16)\n"
        "got = np.load(d + 'f16.npy').view(np.uint16)\n"
        "bad = np.nonzero(got != want)[0]\n"
        "assert bad.size == 0, ('float16', bad.size, x[bad[:5]], got[bad[:5]], want[bad[:5]])\n"
        "u = x.view(np.uint32).astype(np.uint64)\n"  // the bfloat16 reference: round half to even by bits
        "want = ((u + 0x7fff + ((u >> 16) & 1)) >> 16).astype(np.uint16)\n"
        "nan = np.isnan(x)\n"
        "want[nan] = ((u[nan] >> 16) | 0x40).astype(np.uint16)\n"
        "got = np.load(d + 'bf16.npy')\n"
        "bad = np.nonzero(got != want)[0]\n"
        "assert bad.size == 0, ('bfloat16', bad.size, x[bad[:5]], got[bad[:5]], want[bad[:5]])\n"
        "h = np.arange(65536, dtype=np.uint32)\n"
        "assert np.array_equal(np.load(d + 'from_f16.npy').view(np.uint32), "
        "h.astype(np.uint16).view(np.float16).astype(np.float32).view(np.uint32))\n"
        "assert np.array_equal(np.load(d + 'from_bf16.npy').view(np.uint32), h << 16)\n";
    std::ofstream(temp("conversions.py")) << script;
    EXPECT_EQ(std::system(("/usr/bin/python3 " + temp("conversions.py")).c_str()), 0);
}


/// The bytes of `path`.
std::string file_bytes(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    return std::string((std::istreambuf_iterator<char>(in)), {});
}

TEST(Npy, WeightsAreWrittenInTheirDtypeByteForByte) {
    // Each dtype's data bytes as known constants (little-endian), after numpy's 128-byte header.
    compiler::Weight i8{{2, 2}, {}, hw::DType::Int8, {-128, -1, 0, 127}};
    compiler::Weight i32{{2}, {}, hw::DType::Int32, {-2, 65536}};
    compiler::Weight bf16{{3}, {1.0f, -2.0f, 1.0f + 1.0f / 256}, hw::DType::BFloat16, {}};  // the last: a tie, to 1
    compiler::Weight f16{{2}, {1.0f, -0.5f}, hw::DType::Float16, {}};
    compiler::Weight f32{{1}, {1.5f}, hw::DType::Float32, {}};
    const std::pair<const compiler::Weight*, std::string> cases[] = {
        {&i8, std::string("\x80\xff\x00\x7f", 4)},
        {&i32, std::string("\xfe\xff\xff\xff\x00\x00\x01\x00", 8)},
        {&bf16, std::string("\x80\x3f\x00\xc0\x80\x3f", 6)},
        {&f16, std::string("\x00\x3c\x00\xb8", 4)},
        {&f32, std::string("\x00\x00\xc0\x3f", 4)}};
    int n = 0;
    for (const auto& [weight, data] : cases) {
        const std::string path = temp("weight" + std::to_string(n++) + ".npy");
        write_weight_npy(path, *weight);
        const std::string bytes = file_bytes(path);
        ASSERT_EQ(bytes.size(), 128 + data.size()) << path;
        EXPECT_EQ(bytes.substr(128), data) << path;
        const NpyData back = read_tensor_npy(path, "w", weight->shape, weight->dtype);
        EXPECT_EQ(npy_to_float(back), weight_values(*weight)) << path;
    }
    EXPECT_EQ(weight_values(bf16), (std::vector<float>{1, -2, 1}));  // what DRAM holds
    if (!have_numpy()) GTEST_SKIP() << "no numpy";
    const std::string script =
        "import numpy as np\n"
        "d = '" + temp("weight") + "'\n"
        "a = np.load(d + '0.npy'); assert a.dtype == np.int8 and a.tolist() == [[-128, -1], [0, 127]], a\n"
        "a = np.load(d + '1.npy'); assert a.dtype == np.int32 and a.tolist() == [-2, 65536], a\n"
        "a = np.load(d + '2.npy'); assert a.dtype == np.uint16 and a.tolist() == [0x3f80, 0xc000, 0x3f80], a\n"
        "a = np.load(d + '3.npy'); assert a.dtype == np.float16 and a.tolist() == [1.0, -0.5], a\n"
        "a = np.load(d + '4.npy'); assert a.dtype == np.float32 and a.tolist() == [1.5], a\n";
    std::ofstream(temp("weights.py")) << script;
    EXPECT_EQ(std::system(("/usr/bin/python3 " + temp("weights.py")).c_str()), 0);
}

TEST(Npy, ATensorsFileMustHoldItsDtypeAndShape) {
    const int8_t q[] = {1, 2, 3, 4};
    const float f[] = {1, 2, 3, 4};
    write_npy_data(temp("t_i8.npy"), {4}, NpyType::Int8, q);
    write_npy(temp("t_f32.npy"), {4}, f);
    const auto problem = [](const std::string& path, const std::vector<uint64_t>& shape, hw::DType type) {
        try {
            read_tensor_npy(path, "x", shape, type);
        } catch (const NpyError& e) {
            return std::string(e.what());
        }
        return std::string("accepted");
    };
    EXPECT_EQ(problem(temp("t_f32.npy"), {4}, hw::DType::Int8),
              temp("t_f32.npy") + ": tensor 'x' is int8, the file holds float32 (<f4)");
    EXPECT_EQ(problem(temp("t_i8.npy"), {4}, hw::DType::BFloat16),
              temp("t_i8.npy") + ": tensor 'x' is bfloat16 (uint16 bit patterns, '<u2'), the file holds int8 (|i1)");
    EXPECT_EQ(problem(temp("t_i8.npy"), {2, 2}, hw::DType::Int8),
              temp("t_i8.npy") + ": shape [4] does not match tensor 'x' [2, 2]");
    // A float32 tensor keeps read_npy's message.
    EXPECT_EQ(problem(temp("t_i8.npy"), {4}, hw::DType::Float32),
              temp("t_i8.npy") + ": dtype '|i1' (int8) is not the tensor's float32 ('<f4'): kpu-sim runs float32 "
                                 "programs; a.astype(np.float32)");
    EXPECT_EQ(problem(temp("t_i8.npy"), {4}, hw::DType::Int64),
              temp("t_i8.npy") + ": tensor 'x' is int64, which kpu-sim does not read from a file");
    EXPECT_EQ(npy_to_float(read_tensor_npy(temp("t_i8.npy"), "x", {4}, hw::DType::Int8)),
              (std::vector<float>{1, 2, 3, 4}));
}

}  // namespace
}  // namespace kpu::cli
