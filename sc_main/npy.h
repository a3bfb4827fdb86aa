// NumPy .npy files (format 1.0/2.0/3.0, little-endian float32, C order): how kpu-sim takes
// inputs and gives outputs. Anything else is refused with a message naming the file.
#pragma once

#include <cstdint>
#include <functional>
#include <stdexcept>
#include <string>
#include <vector>

namespace kpu::cli {

class NpyError : public std::runtime_error {
public:
    using std::runtime_error::runtime_error;
};

struct NpyArray {
    std::vector<uint64_t> shape;
    std::vector<float> data;  ///< row-major
};

/// Called with the header's shape before any data is read (it throws to refuse it).
using ShapeCheck = std::function<void(const std::vector<uint64_t>&)>;

/// Reads a float32 array; throws NpyError ("<path>: <problem>") on any other content,
/// including a file longer or shorter than its shape says.
NpyArray read_npy(const std::string& path, const ShapeCheck& check_shape = {});

/// Writes `data` with `shape` as a version 1.0 '<f4' array; throws NpyError on I/O failure.
void write_npy(const std::string& path, const std::vector<uint64_t>& shape, const float* data);

}  // namespace kpu::cli
