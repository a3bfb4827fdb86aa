// NumPy .npy files (format 1.0/2.0/3.0, little-endian, C order): how kpu-sim takes inputs and
// weights and gives outputs, each in its tensor's dtype. read_npy takes float32 only (float32
// tensors); read_npy_data and write_npy_data also take the reduced-precision types (int8,
// int32, float16, and bfloat16 as uint16 bit patterns: numpy has no bfloat16;
// docs/user-guide.md). Anything else is refused with a message naming the file.
#pragma once

#include <cstdint>
#include <functional>
#include <stdexcept>
#include <string>
#include <vector>

#include "hardware/numeric.h"

namespace kpu::compiler {
struct Weight;
}

namespace kpu::cli {

class NpyError : public std::runtime_error {
public:
    using std::runtime_error::runtime_error;
};

/// The element types a .npy may hold here, and numpy's dtype of each.
enum class NpyType : uint8_t {
    Float32,   ///< '<f4'
    Float16,   ///< '<f2'
    BFloat16,  ///< '<u2': uint16 bit patterns (the top half of a float32), numpy having no bfloat16
    Int8,      ///< '|i1'
    Int32,     ///< '<i4'
};
const char* npy_descr(NpyType type);      ///< "<f4", "<f2", "<u2", "|i1", "<i4"
const char* npy_type_name(NpyType type);  ///< "float32", "float16", "bfloat16", "int8", "int32"
uint32_t npy_type_bytes(NpyType type);

/// An array of any NpyType, as its little-endian bytes.
struct NpyData {
    std::vector<uint64_t> shape;
    NpyType type = NpyType::Float32;
    std::vector<uint8_t> bytes;  ///< row-major elements

    uint64_t elements() const { return bytes.size() / npy_type_bytes(type); }
};

/// Each element as a float: exact for float32, float16, bfloat16 and int8, and for int32 up
/// to 2^24 in magnitude (float32 rounds beyond, to nearest even).
std::vector<float> npy_to_float(const NpyData& data);

/// The NpyType a tensor of `dtype` is stored as (bfloat16: '<u2' bit patterns); throws
/// NpyError for int64, which no .npy of kpu-sim holds.
NpyType npy_type_of(hw::DType dtype);

/// A tensor's values as kpu-sim's host and reference carry them, one float per element: the
/// float types' values, the integer types' stored integers (int8's q, not (q - zp) * scale).
/// `count` elements stored as `type` at `bytes`, as those floats (npy_to_float's rule).
std::vector<float> element_values(const uint8_t* bytes, uint64_t count, hw::DType type);
/// `count` values stored as `type`: float16 and bfloat16 rounded to nearest even (exact for
/// values of the type), integers rounded half to even and saturated.
std::vector<uint8_t> element_bytes(const float* values, uint64_t count, hw::DType type);

/// A weight's elements as stored beside the .kpu and in DRAM (Weight::dtype: `values` for the
/// float types, `integers` for int8 and int32).
std::vector<uint8_t> weight_bytes(const compiler::Weight& weight);
/// A weight's values as element_values() gives them: those of its bytes as stored.
std::vector<float> weight_values(const compiler::Weight& weight);
/// Writes `weight` as a .npy of its dtype; throws NpyError on I/O failure.
void write_weight_npy(const std::string& path, const compiler::Weight& weight);

struct NpyArray {
    std::vector<uint64_t> shape;
    std::vector<float> data;  ///< row-major
};

/// Called with the header's shape before any data is read (it throws to refuse it).
using ShapeCheck = std::function<void(const std::vector<uint64_t>&)>;

/// Reads a float32 array; throws NpyError ("<path>: <problem>") on any other content,
/// including a file longer or shorter than its shape says.
NpyArray read_npy(const std::string& path, const ShapeCheck& check_shape = {});

/// Reads an array of any NpyType; throws NpyError as read_npy does, naming the dtypes it takes.
NpyData read_npy_data(const std::string& path, const ShapeCheck& check_shape = {});

/// Reads `path` for tensor `name` of `shape` and `dtype`: the file's shape and dtype must be the
/// tensor's (bfloat16: uint16 bit patterns, '<u2'); throws NpyError ("<path>: tensor 'x' is
/// int8, the file holds float32 (<f4)", and read_npy's messages for a float32 tensor).
NpyData read_tensor_npy(const std::string& path, const std::string& name, const std::vector<uint64_t>& shape,
                        hw::DType dtype);

/// Writes `data` with `shape` as a version 1.0 '<f4' array; throws NpyError on I/O failure.
void write_npy(const std::string& path, const std::vector<uint64_t>& shape, const float* data);

/// Writes `data` (the elements of `type`, little-endian) with `shape` as a version 1.0 array of
/// that type's dtype; throws NpyError on I/O failure.
void write_npy_data(const std::string& path, const std::vector<uint64_t>& shape, NpyType type, const void* data);

}  // namespace kpu::cli
