// The scalar functions the vector engine and the fabric's drain both apply (VectorFunction's
// Relu, Gelu, GeluTanh, Sigmoid, Silu, Tanh; the drain's Activation). One definition for both:
// an activation fused into a drain (the fuse-epilogue pass) gives the same bits as the vector
// engine applying it after the matmul. No SystemC.
#pragma once

#include <cmath>

#include "hardware/fabric_command.h"

namespace kpu::hw {

/// max(x, 0) with NaN kept (ONNX Relu).
inline float relu(float x) { return x < 0 ? 0.0f : x; }

inline float sigmoid(float x) {
    if (x >= 0) return 1.0f / (1.0f + std::exp(-x));
    const float e = std::exp(x);  // no overflow for very negative x
    return e / (1.0f + e);
}

inline float silu(float x) { return x * sigmoid(x); }

/// x/2 (1 + erf(x / sqrt 2)): ONNX Gelu with approximate = none.
inline float gelu_erf(float x) { return 0.5f * x * (1.0f + std::erf(x * 0.70710678118654752f)); }

/// x/2 (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))): ONNX Gelu with approximate = tanh.
inline float gelu_tanh(float x) {
    constexpr float kSqrt2OverPi = 0.7978845608028654f;
    return 0.5f * x * (1.0f + std::tanh(kSqrt2OverPi * (x + 0.044715f * x * x * x)));
}

/// The drain's activation of x.
inline float activate(float x, Activation activation) {
    switch (activation) {
        case Activation::None: return x;
        case Activation::Relu: return relu(x);
        case Activation::Gelu: return gelu_tanh(x);
        case Activation::GeluErf: return gelu_erf(x);
        case Activation::Sigmoid: return sigmoid(x);
        case Activation::Silu: return silu(x);
        case Activation::Tanh: return std::tanh(x);
    }
    return x;
}

}  // namespace kpu::hw
