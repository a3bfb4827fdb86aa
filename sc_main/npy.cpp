#include "sc_main/npy.h"

#include <cstring>
#include <fstream>
#include <regex>

#include "compiler/graph.h"

namespace kpu::cli {

NpyArray read_npy(const std::string& path, const ShapeCheck& check_shape) {
    std::ifstream in(path, std::ios::binary);
    if (!in) throw NpyError(path + ": cannot open .npy file");
    auto fail = [&](const std::string& problem) -> NpyError { return NpyError(path + ": " + problem); };

    char magic[8];
    if (!in.read(magic, 8) || std::memcmp(magic, "\x93NUMPY", 6) != 0) throw fail("not a .npy file (bad magic)");
    const int major = static_cast<unsigned char>(magic[6]);
    uint32_t header_len = 0;
    if (major == 1) {
        unsigned char len[2];
        if (!in.read(reinterpret_cast<char*>(len), 2)) throw fail("truncated header");
        header_len = len[0] | (len[1] << 8);
    } else if (major == 2 || major == 3) {
        unsigned char len[4];
        if (!in.read(reinterpret_cast<char*>(len), 4)) throw fail("truncated header");
        header_len = len[0] | (len[1] << 8) | (len[2] << 16) | (uint32_t(len[3]) << 24);
    } else {
        throw fail("unsupported .npy version " + std::to_string(major));
    }
    if (header_len > (1u << 20)) throw fail("header of " + std::to_string(header_len) + " bytes is too long");
    std::string header(header_len, '\0');
    if (!in.read(header.data(), header_len)) throw fail("truncated header");

    std::smatch m;
    if (!std::regex_search(header, m, std::regex(R"('descr'\s*:\s*'([^']*)')")))
        throw fail("header has no 'descr'");
    const std::string descr = m[1];
    if (descr != "<f4")
        throw fail("dtype '" + descr + "' is not supported; expected float32 ('<f4'), e.g. a.astype(np.float32)");
    if (!std::regex_search(header, m, std::regex(R"('fortran_order'\s*:\s*(True|False))")))
        throw fail("header has no 'fortran_order'");
    if (m[1] == "True") throw fail("Fortran-ordered arrays are not supported; save np.ascontiguousarray(a)");
    if (!std::regex_search(header, m, std::regex(R"('shape'\s*:\s*\(([^)]*)\))"))) throw fail("header has no 'shape'");

    NpyArray array;
    const std::string dims = m[1];
    std::regex number(R"(\d+)");
    constexpr uint64_t kMaxElements = uint64_t(1) << 38;  // 1 TiB of float32: the largest tensor a graph may have
    uint64_t count = 1;
    for (auto it = std::sregex_iterator(dims.begin(), dims.end(), number); it != std::sregex_iterator(); ++it) {
        const std::string digits = it->str();
        if (digits.size() > 12) throw fail("shape dimension " + digits + " is too large");
        array.shape.push_back(std::stoull(digits));
        const uint64_t d = array.shape.back();
        count = d != 0 && count > kMaxElements / d ? kMaxElements + 1 : count * d;
    }
    if (count > kMaxElements) throw fail("shape (" + dims + ") is more than 1 TiB of float32");
    if (check_shape) check_shape(array.shape);
    // The file must hold exactly the data the shape says, checked before anything is
    // allocated: a short header must not make kpu-sim allocate gigabytes.
    const std::streamoff data_at = in.tellg();
    in.seekg(0, std::ios::end);
    const uint64_t have = uint64_t(in.tellg() - data_at), need = count * sizeof(float);
    if (have < need)
        throw fail("data ends early: shape " + compiler::shape_string(array.shape) + " needs " + std::to_string(need) +
                   " bytes, the file has " + std::to_string(have));
    if (have > need)
        throw fail(std::to_string(have - need) + " bytes after the data: shape " +
                   compiler::shape_string(array.shape) + " needs " + std::to_string(need));
    in.seekg(data_at);
    array.data.resize(count);
    if (!in.read(reinterpret_cast<char*>(array.data.data()), std::streamsize(need))) throw fail("read failed");
    return array;
}

void write_npy(const std::string& path, const std::vector<uint64_t>& shape, const float* data) {
    std::string dims;
    uint64_t count = 1;
    for (size_t i = 0; i < shape.size(); ++i) dims += (i ? ", " : "") + std::to_string(shape[i]), count *= shape[i];
    if (shape.size() == 1) dims += ",";  // a Python 1-tuple: "(5,)"
    std::string header = "{'descr': '<f4', 'fortran_order': False, 'shape': (" + dims + "), }";
    // Magic (6) + version (2) + length (2) + header + '\n' is padded to a multiple of 64.
    const size_t total = (10 + header.size() + 1 + 63) / 64 * 64;
    header.append(total - 10 - header.size() - 1, ' ');
    header += '\n';
    std::ofstream out(path, std::ios::binary);
    if (!out) throw NpyError(path + ": cannot write .npy file");
    const uint16_t len = uint16_t(header.size());
    out.write("\x93NUMPY\x01\x00", 8);
    const char len_bytes[2] = {char(len & 0xff), char(len >> 8)};
    out.write(len_bytes, 2);
    out.write(header.data(), std::streamsize(header.size()));
    out.write(reinterpret_cast<const char*>(data), std::streamsize(count * sizeof(float)));
    if (!out) throw NpyError(path + ": write failed");
}

}  // namespace kpu::cli
