// Seeded random fp32 operands for the tests of every layer: a seed gives the same values on
// every run and every host.
#pragma once

#include <cstddef>
#include <random>
#include <vector>

namespace kpu::test {

/// `n` values drawn uniformly from [lo, hi) by a std::mt19937 seeded with `seed`.
inline std::vector<float> random_floats(size_t n, unsigned seed, float lo = -1.0f, float hi = 1.0f) {
    std::mt19937 gen(seed);
    std::uniform_real_distribution<float> dist(lo, hi);
    std::vector<float> v(n);
    for (auto& x : v) x = dist(gen);
    return v;
}

}  // namespace kpu::test
