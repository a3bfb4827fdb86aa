// The reduced-precision element types' conversions, bit-exact and header-only, for every layer
// that stores or reads them (.npy files today; the datapath's stores later): float32 to and
// from bfloat16 and IEEE binary16 (float16), rounding to nearest, ties to even. A float16
// conversion gives numpy's astype(np.float16) bit for bit (overflow to infinity, subnormals,
// NaN payloads as numpy keeps them); a bfloat16 one is the top 16 bits of the float32 rounded
// the same way, a NaN kept a quiet NaN of the same sign.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <string>

#include "hardware/enum_names.h"

namespace kpu::hw {

/// Element types: the graph's (ONNX's vocabulary; the integers also hold shapes, axes and
/// indices) and the datapath's (float32, bfloat16, float16 and int8 operands, int32 biases).
enum class DType : uint8_t { Float32, Float16, BFloat16, Int8, Int32, Int64 };
/// As graphs, .kpu files, bound programs, configs and traces spell them.
inline constexpr EnumName<DType> kDTypeNames[] = {{DType::Float32, "float32"}, {DType::Float16, "float16"},
                                                  {DType::BFloat16, "bfloat16"}, {DType::Int8, "int8"},
                                                  {DType::Int32, "int32"},     {DType::Int64, "int64"}};
inline const char* to_string(DType dtype) { return name_in(kDTypeNames, dtype); }
inline bool parse_dtype(const std::string& name, DType& out) { return value_in(kDTypeNames, name, out); }
/// Bytes of one element.
constexpr uint64_t dtype_bytes(DType dtype) {
    switch (dtype) {
        case DType::Float32: case DType::Int32: return 4;
        case DType::Float16: case DType::BFloat16: return 2;
        case DType::Int8: return 1;
        case DType::Int64: return 8;
    }
    return 0;
}
/// Whether values of the type are integers.
constexpr bool is_integer(DType dtype) { return dtype == DType::Int8 || dtype == DType::Int32 || dtype == DType::Int64; }

inline uint32_t float_bits(float value) {
    uint32_t bits;
    std::memcpy(&bits, &value, sizeof bits);
    return bits;
}

inline float bits_float(uint32_t bits) {
    float value;
    std::memcpy(&value, &bits, sizeof value);
    return value;
}

/// bfloat16 bits of `value`: round to nearest even; a NaN stays a (quiet) NaN.
inline uint16_t float_to_bfloat16(float value) {
    const uint32_t f = float_bits(value);
    if ((f & 0x7fffffffu) > 0x7f800000u) return uint16_t((f >> 16) | 0x0040u);
    return uint16_t((f + 0x7fffu + ((f >> 16) & 1u)) >> 16);
}

/// The float32 a bfloat16 holds (exact).
inline float bfloat16_to_float(uint16_t bits) { return bits_float(uint32_t(bits) << 16); }

/// IEEE binary16 bits of `value`: round to nearest even, overflow to infinity, subnormals
/// rounded the same way (numpy's npy_floatbits_to_halfbits).
inline uint16_t float_to_half(float value) {
    const uint32_t f = float_bits(value);
    const uint16_t sign = uint16_t((f >> 16) & 0x8000u);
    const uint32_t exponent = f & 0x7f800000u;
    if (exponent >= 0x47800000u) {  // |value| >= 65536, infinity or NaN
        const uint32_t significand = f & 0x007fffffu;
        if (exponent == 0x7f800000u && significand != 0) {  // NaN: the payload's top bits, still a NaN
            uint16_t nan = uint16_t(0x7c00u + (significand >> 13));
            if (nan == 0x7c00u) ++nan;
            return uint16_t(sign + nan);
        }
        return uint16_t(sign + 0x7c00u);
    }
    if (exponent <= 0x38000000u) {  // a float16 subnormal or zero
        if (exponent < 0x33000000u) return sign;  // below half the smallest subnormal
        const uint32_t e = exponent >> 23;
        uint32_t significand = 0x00800000u + (f & 0x007fffffu);
        significand >>= (113 - e);
        // Round half to even: add half an ulp unless the value is exactly halfway with an even
        // last bit; the bits the shift dropped count as "above halfway".
        if ((significand & 0x00003fffu) != 0x00001000u || (f & 0x000007ffu)) significand += 0x00001000u;
        return uint16_t(sign + (significand >> 13));  // a carry into the exponent is right
    }
    const uint16_t half_exponent = uint16_t((exponent - 0x38000000u) >> 13);
    uint32_t significand = f & 0x007fffffu;
    if ((significand & 0x00003fffu) != 0x00001000u) significand += 0x00001000u;
    // A carry out of the significand increments the exponent (to infinity at the top): right.
    return uint16_t(sign + half_exponent + (significand >> 13));
}

/// The float32 a float16 holds (exact).
inline float half_to_float(uint16_t h) {
    const uint32_t sign = uint32_t(h & 0x8000u) << 16;
    const uint32_t exponent = (h >> 10) & 0x1fu;
    uint32_t significand = h & 0x03ffu;
    if (exponent == 0x1fu) return bits_float(sign | 0x7f800000u | (significand << 13));  // inf, NaN
    if (exponent != 0) return bits_float(sign | ((exponent + 112) << 23) | (significand << 13));
    if (significand == 0) return bits_float(sign);
    int shift = 0;  // a subnormal: normalise it
    while (!(significand & 0x0400u)) significand <<= 1, ++shift;
    return bits_float(sign | uint32_t(113 - shift) << 23 | ((significand & 0x03ffu) << 13));
}

}  // namespace kpu::hw

namespace kpu::hw {

/// How an operand's elements are stored in memory: the type and, for int8, the affine
/// quantization real = (q - zero_point) * scale (ONNX's QuantizeLinear). Engines read any
/// encoding into float32 (load_element) and write float32 results into any (store_element):
/// the arithmetic between is float32.
struct Encoding {
    DType type = DType::Float32;  ///< float32, bfloat16, float16 or int8
    float scale = 1.0f;           ///< int8: the real value of one step (> 0, finite)
    int32_t zero_point = 0;       ///< int8: the stored value of real 0, in [-128, 127]
    bool operator==(const Encoding& o) const {
        return type == o.type && scale == o.scale && zero_point == o.zero_point;
    }
};

/// `value` rounded to the nearest integer, ties to even, and saturated to [lo, hi]; NaN gives 0.
inline int32_t round_saturate(float value, int32_t lo, int32_t hi) {
    if (std::isnan(value)) return 0;
    if (value <= float(lo)) return lo;
    if (value >= float(hi)) return hi;
    return int32_t(std::nearbyint(value));  // the default rounding mode: to nearest, ties to even
}

/// int8 of `real` under (scale, zero_point): saturate(round_half_even(real / scale) + zero_point),
/// ONNX QuantizeLinear's formula, in float32.
inline int8_t quantize_int8(float real, float scale, int32_t zero_point) {
    const float steps = real / scale;
    if (std::isnan(steps)) return int8_t(std::clamp<int32_t>(zero_point, -128, 127));
    const float clamped = std::fmin(std::fmax(steps, -512.0f), 512.0f);  // beyond any int8 + zero point
    return int8_t(std::clamp<int32_t>(int32_t(std::nearbyint(clamped)) + zero_point, -128, 127));
}

/// The float32 value of the element at `p` under `e` (int8: (q - zero_point) * scale).
inline float load_element(const uint8_t* p, const Encoding& e) {
    switch (e.type) {
        case DType::Float32: { float v; std::memcpy(&v, p, 4); return v; }
        case DType::BFloat16: { uint16_t b; std::memcpy(&b, p, 2); return bfloat16_to_float(b); }
        case DType::Float16: { uint16_t b; std::memcpy(&b, p, 2); return half_to_float(b); }
        case DType::Int8: return float(int32_t(int8_t(*p)) - e.zero_point) * e.scale;
        case DType::Int32: { int32_t v; std::memcpy(&v, p, 4); return float(v); }
        case DType::Int64: { int64_t v; std::memcpy(&v, p, 8); return float(v); }
    }
    return 0.0f;
}

/// Stores float32 `value` at `p` under `e`: float types round to nearest even, int8 quantizes
/// (quantize_int8), int32 rounds half to even and saturates.
inline void store_element(uint8_t* p, float value, const Encoding& e) {
    switch (e.type) {
        case DType::Float32: std::memcpy(p, &value, 4); return;
        case DType::BFloat16: { const uint16_t b = float_to_bfloat16(value); std::memcpy(p, &b, 2); return; }
        case DType::Float16: { const uint16_t b = float_to_half(value); std::memcpy(p, &b, 2); return; }
        case DType::Int8: *p = uint8_t(quantize_int8(value, e.scale, e.zero_point)); return;
        case DType::Int32: {
            const int32_t v = round_saturate(value, INT32_MIN, INT32_MAX);
            std::memcpy(p, &v, 4);
            return;
        }
        case DType::Int64: { const int64_t v = int64_t(std::nearbyint(value)); std::memcpy(p, &v, 8); return; }
    }
}

}  // namespace kpu::hw
