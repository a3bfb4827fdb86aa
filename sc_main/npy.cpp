#include "sc_main/npy.h"

#include <cstring>
#include <fstream>
#include <optional>
#include <sys/stat.h>

#include "compiler/graph.h"
#include "hardware/numeric.h"
#include "hardware/output_file.h"

namespace kpu::cli {

namespace {

/// The fields of a .npy header, a Python dict literal such as
/// {'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }: read by hand, in one pass
/// without recursion, so that a header field of any length costs its length.
struct NpyHeader {
    std::optional<std::string> descr;
    std::optional<bool> fortran_order;
    std::optional<std::string> shape;  ///< the text between the parentheses, as written
    std::vector<uint64_t> dims;
};

/// A value as a message shows it: at most 40 characters.
std::string shown(const std::string& text) { return text.size() > 40 ? text.substr(0, 37) + "..." : text; }

/// Parses `header`; returns the problem ("" when none).
std::string parse_header(const std::string& header, NpyHeader& out) {
    size_t i = 0;
    auto skip_space = [&] {
        while (i < header.size() && (header[i] == ' ' || header[i] == '\t' || header[i] == '\n' || header[i] == '\r'))
            ++i;
    };
    auto at = [&](char c) { return i < header.size() && header[i] == c; };
    auto where = [&] { return " at header byte " + std::to_string(i); };
    auto quoted = [&](std::string& text) -> bool {  // a Python string in ' or "
        if (!at('\'') && !at('"')) return false;
        const char quote = header[i];
        const size_t end = header.find(quote, i + 1);
        if (end == std::string::npos) return false;
        text = header.substr(i + 1, end - i - 1);
        i = end + 1;
        return true;
    };
    skip_space();
    if (!at('{')) return "header is not a dict" + where();
    ++i;
    for (;;) {
        skip_space();
        if (at('}')) break;
        std::string key;
        if (!quoted(key)) return "header key expected" + where();
        skip_space();
        if (!at(':')) return "header field '" + shown(key) + "': ':' expected" + where();
        ++i;
        skip_space();
        if (key == "descr") {
            std::string descr;
            if (!quoted(descr)) return "header field 'descr': a quoted dtype expected" + where();
            out.descr = descr;
        } else if (key == "fortran_order") {
            if (header.compare(i, 4, "True") == 0) out.fortran_order = true, i += 4;
            else if (header.compare(i, 5, "False") == 0) out.fortran_order = false, i += 5;
            else return "header field 'fortran_order': True or False expected" + where();
        } else if (key == "shape") {
            if (!at('(')) return "header field 'shape': a tuple expected" + where();
            const size_t end = header.find(')', i);
            if (end == std::string::npos) return "header field 'shape': no ')'";
            out.shape = header.substr(i + 1, end - i - 1);
            // Dimensions: non-negative integers separated by commas, a trailing comma allowed.
            const std::string& dims = *out.shape;
            size_t d = 0;
            for (;;) {
                while (d < dims.size() && dims[d] == ' ') ++d;
                if (d == dims.size()) break;
                const size_t comma = dims.find(',', d);
                std::string dim = dims.substr(d, comma == std::string::npos ? std::string::npos : comma - d);
                dim.erase(dim.find_last_not_of(' ') + 1);
                if (dim.empty() || dim.find_first_not_of("0123456789") != std::string::npos)
                    return "header field 'shape': dimension '" + shown(dim) +
                           "' is not a non-negative integer (shape (" + shown(dims) + "))";
                if (dim.size() > 12) return "shape dimension " + dim + " is too large";
                out.dims.push_back(std::stoull(dim));
                if (comma == std::string::npos) break;
                d = comma + 1;
            }
            i = end + 1;
        } else {
            return "header field '" + shown(key) + "' is not one of 'descr', 'fortran_order', 'shape'";
        }
        skip_space();
        if (at(',')) {
            ++i;
            continue;
        }
        skip_space();
        if (!at('}')) return "header: ',' or '}' expected" + where();
    }
    ++i;
    skip_space();  // numpy pads the header with spaces and a newline
    if (i != header.size()) return "header: text after the dict" + where();
    return "";
}

struct TypeInfo {
    NpyType type;
    const char* descr;
    const char* name;
    uint32_t bytes;
    hw::DType dtype;  ///< the tensor dtype stored so
};
constexpr TypeInfo kTypes[] = {{NpyType::Float32, "<f4", "float32", 4, hw::DType::Float32},
                               {NpyType::Float16, "<f2", "float16", 2, hw::DType::Float16},
                               {NpyType::BFloat16, "<u2", "bfloat16", 2, hw::DType::BFloat16},
                               {NpyType::Int8, "|i1", "int8", 1, hw::DType::Int8},
                               {NpyType::Int32, "<i4", "int32", 4, hw::DType::Int32}};

const TypeInfo& info(NpyType type) {
    for (const TypeInfo& t : kTypes)
        if (t.type == type) return t;
    return kTypes[0];
}

/// The type of a header's descr; numpy writes int8 as '|i1', '<i1' means the same.
const TypeInfo* type_of_descr(const std::string& descr) {
    for (const TypeInfo& t : kTypes)
        if (descr == t.descr) return &t;
    return descr == "<i1" ? &info(NpyType::Int8) : nullptr;
}

/// Reads `path`'s header and data. With `float32_only`, any dtype but '<f4' is refused (what
/// kpu-sim's float32 tensors take); otherwise any of kTypes. `destination(type, bytes)` gives
/// where the data goes, called once the size is checked.
NpyType read_any(const std::string& path, const ShapeCheck& check_shape, bool float32_only,
                 std::vector<uint64_t>& shape, const std::function<char*(NpyType, uint64_t)>& destination) {
    // Only a regular file: a directory reads as nothing, and opening a FIFO with no writer
    // would wait for one forever.
    struct stat info {};
    if (::stat(path.c_str(), &info) == 0 && !S_ISREG(info.st_mode))
        throw NpyError(path + (S_ISDIR(info.st_mode) ? ": is a directory, not a .npy file"
                                                      : ": is not a regular file (a FIFO, a device or a socket), "
                                                        "not a .npy file"));
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

    NpyHeader h;
    if (const std::string problem = parse_header(header, h); !problem.empty()) throw fail(problem);
    if (!h.descr) throw fail("header has no 'descr'");
    const TypeInfo* type = type_of_descr(*h.descr);
    if (float32_only && type && type->type != NpyType::Float32)
        throw fail("dtype '" + *h.descr + "' (" + type->name +
                   ") is not the tensor's float32 ('<f4'): kpu-sim runs float32 programs; a.astype(np.float32)");
    if (!type) {
        if (float32_only)
            throw fail("dtype '" + *h.descr + "' is not supported; expected float32 ('<f4'), e.g. a.astype(np.float32)");
        throw fail("dtype '" + *h.descr +
                   "' is not supported; expected float32 ('<f4'), float16 ('<f2'), bfloat16 as uint16 bit patterns "
                   "('<u2'), int8 ('|i1') or int32 ('<i4')");
    }
    if (!h.fortran_order) throw fail("header has no 'fortran_order'");
    if (*h.fortran_order) throw fail("Fortran-ordered arrays are not supported; save np.ascontiguousarray(a)");
    if (!h.shape) throw fail("header has no 'shape'");

    constexpr uint64_t kMaxElements = uint64_t(1) << 38;  // 1 TiB of float32: the largest tensor a graph may have
    uint64_t count = 1;
    for (const uint64_t d : h.dims) {
        shape.push_back(d);
        count = d != 0 && count > kMaxElements / d ? kMaxElements + 1 : count * d;
    }
    if (count > kMaxElements) throw fail("shape (" + *h.shape + ") is more than 1 TiB of float32");
    if (check_shape) check_shape(shape);
    // The file must hold exactly the data the shape says, checked before anything is
    // allocated: a short header must not make kpu-sim allocate gigabytes.
    const std::streamoff data_at = in.tellg();
    in.seekg(0, std::ios::end);
    const uint64_t have = uint64_t(in.tellg() - data_at), need = count * type->bytes;
    if (have < need)
        throw fail("data ends early: shape " + compiler::shape_string(shape) + " needs " + std::to_string(need) +
                   " bytes, the file has " + std::to_string(have));
    if (have > need)
        throw fail(std::to_string(have - need) + " bytes after the data: shape " + compiler::shape_string(shape) +
                   " needs " + std::to_string(need));
    in.seekg(data_at);
    if (!in.read(destination(type->type, need), std::streamsize(need))) throw fail("read failed");
    return type->type;
}

/// The header of a version 1.0 .npy of `descr` and `shape`, padded as numpy pads it.
std::string npy_header(const std::vector<uint64_t>& shape, const char* descr, uint64_t& count) {
    std::string dims;
    count = 1;
    for (size_t i = 0; i < shape.size(); ++i) dims += (i ? ", " : "") + std::to_string(shape[i]), count *= shape[i];
    if (shape.size() == 1) dims += ",";  // a Python 1-tuple: "(5,)"
    std::string header = std::string("{'descr': '") + descr + "', 'fortran_order': False, 'shape': (" + dims + "), }";
    // Magic (6) + version (2) + length (2) + header + '\n' is padded to a multiple of 64.
    const size_t total = (10 + header.size() + 1 + 63) / 64 * 64;
    header.append(total - 10 - header.size() - 1, ' ');
    header += '\n';
    return header;
}

void write_bytes(const std::string& path, const std::string& header, const void* data, uint64_t bytes) {
    hw::OutputFile file(path);
    if (!file.is_open()) throw NpyError(path + ": cannot write .npy file");
    std::ostream& out = file.stream();
    const uint16_t len = uint16_t(header.size());
    out.write("\x93NUMPY\x01\x00", 8);
    const char len_bytes[2] = {char(len & 0xff), char(len >> 8)};
    out.write(len_bytes, 2);
    out.write(header.data(), std::streamsize(header.size()));
    out.write(reinterpret_cast<const char*>(data), std::streamsize(bytes));
    if (const std::string problem = file.close(); !problem.empty()) throw NpyError(path + ": " + problem);
}

}  // namespace

const char* npy_descr(NpyType type) { return info(type).descr; }
const char* npy_type_name(NpyType type) { return info(type).name; }
uint32_t npy_type_bytes(NpyType type) { return info(type).bytes; }

NpyArray read_npy(const std::string& path, const ShapeCheck& check_shape) {
    NpyArray array;
    read_any(path, check_shape, true, array.shape, [&](NpyType, uint64_t bytes) {
        array.data.resize(bytes / sizeof(float));
        return reinterpret_cast<char*>(array.data.data());
    });
    return array;
}

NpyData read_npy_data(const std::string& path, const ShapeCheck& check_shape) {
    NpyData data;
    data.type = read_any(path, check_shape, false, data.shape, [&](NpyType, uint64_t bytes) {
        data.bytes.resize(bytes);
        return reinterpret_cast<char*>(data.bytes.data());
    });
    return data;
}

std::vector<float> npy_to_float(const NpyData& data) {
    return element_values(data.bytes.data(), data.elements(), info(data.type).dtype);
}

NpyType npy_type_of(hw::DType dtype) {
    for (const TypeInfo& t : kTypes)
        if (t.dtype == dtype) return t.type;
    throw NpyError(std::string("no .npy type for ") + hw::to_string(dtype) + " tensors");
}

std::vector<float> element_values(const uint8_t* bytes, uint64_t count, hw::DType type) {
    const hw::Encoding stored{type};  // scale 1, zero point 0: an integer's value is itself
    const uint64_t size = hw::dtype_bytes(type);
    std::vector<float> out(count);
    for (uint64_t i = 0; i < count; ++i) out[i] = hw::load_element(bytes + i * size, stored);
    return out;
}

std::vector<uint8_t> element_bytes(const float* values, uint64_t count, hw::DType type) {
    const hw::Encoding stored{type};
    const uint64_t size = hw::dtype_bytes(type);
    std::vector<uint8_t> out(count * size);
    for (uint64_t i = 0; i < count; ++i) hw::store_element(out.data() + i * size, values[i], stored);
    return out;
}

std::vector<uint8_t> weight_bytes(const compiler::Weight& weight) {
    if (!hw::is_integer(weight.dtype)) return element_bytes(weight.values.data(), weight.values.size(), weight.dtype);
    const uint64_t size = hw::dtype_bytes(weight.dtype);
    std::vector<uint8_t> out(weight.integers.size() * size);
    for (size_t i = 0; i < weight.integers.size(); ++i) {
        const int64_t v = weight.integers[i];  // little-endian: the low bytes of the integer
        for (uint64_t b = 0; b < size; ++b) out[i * size + b] = uint8_t(uint64_t(v) >> (8 * b));
    }
    return out;
}

std::vector<float> weight_values(const compiler::Weight& weight) {
    if (weight.dtype == hw::DType::Float32) return weight.values;
    const std::vector<uint8_t> stored = weight_bytes(weight);
    return element_values(stored.data(), stored.size() / hw::dtype_bytes(weight.dtype), weight.dtype);
}

void write_weight_npy(const std::string& path, const compiler::Weight& weight) {
    const std::vector<uint8_t> bytes = weight_bytes(weight);
    write_npy_data(path, weight.shape, npy_type_of(weight.dtype), bytes.data());
}

void write_npy(const std::string& path, const std::vector<uint64_t>& shape, const float* data) {
    write_npy_data(path, shape, NpyType::Float32, data);
}

void write_npy_data(const std::string& path, const std::vector<uint64_t>& shape, NpyType type, const void* data) {
    uint64_t count = 0;
    const std::string header = npy_header(shape, npy_descr(type), count);
    write_bytes(path, header, data, count * npy_type_bytes(type));
}

NpyData read_tensor_npy(const std::string& path, const std::string& name, const std::vector<uint64_t>& shape,
                        hw::DType dtype) {
    const ShapeCheck check_shape = [&](const std::vector<uint64_t>& have) {
        if (have != shape)
            throw NpyError(path + ": shape " + compiler::shape_string(have) + " does not match tensor '" + name + "' " +
                           compiler::shape_string(shape));
    };
    if (dtype == hw::DType::Float32) {  // read_npy's messages say what a float32 tensor takes
        NpyArray array = read_npy(path, check_shape);
        NpyData data{std::move(array.shape), NpyType::Float32, std::vector<uint8_t>(array.data.size() * sizeof(float))};
        std::memcpy(data.bytes.data(), array.data.data(), data.bytes.size());
        return data;
    }
    if (dtype == hw::DType::Int64)
        throw NpyError(path + ": tensor '" + name + "' is int64, which kpu-sim does not read from a file");
    NpyData data = read_npy_data(path, check_shape);
    if (data.type != npy_type_of(dtype))
        throw NpyError(path + ": tensor '" + name + "' is " + hw::to_string(dtype) +
                       (dtype == hw::DType::BFloat16 ? " (uint16 bit patterns, '<u2')" : "") + ", the file holds " +
                       npy_type_name(data.type) + " (" + npy_descr(data.type) + ")");
    return data;
}

}  // namespace kpu::cli
