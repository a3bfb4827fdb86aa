// Graph texts the tests compile: a matmul of any shape, and the repository's examples.
#pragma once

#include <cstdint>
#include <string>

#include "tests/support/files.h"

namespace kpu::test {

/// The single-op form of C[m x n] = A[m x k] B[k x n] in float32, with a bias of n and an
/// activation when asked.
inline std::string matmul_json(uint64_t m, uint64_t n, uint64_t k, bool bias = false,
                               const std::string& activation = "") {
    std::string text = "{\"op\": \"matmul\", \"A\": {\"shape\": [" + std::to_string(m) + ", " + std::to_string(k) +
                       "], \"dtype\": \"float32\"}, \"B\": {\"shape\": [" + std::to_string(k) + ", " +
                       std::to_string(n) + "], \"dtype\": \"float32\"}, \"C\": {\"shape\": [" + std::to_string(m) +
                       ", " + std::to_string(n) + "], \"dtype\": \"float32\"}";
    if (bias) text += ", \"bias\": {\"shape\": [" + std::to_string(n) + "]}";
    if (!activation.empty()) text += ", \"activation\": \"" + activation + "\"";
    return text + "}";
}

/// The text of a file of the repository's examples/ (e.g. "mlp.json").
inline std::string example(const std::string& file) { return slurp(std::string(KPU_SOURCE_DIR) + "/examples/" + file); }

}  // namespace kpu::test
