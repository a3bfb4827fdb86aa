// The reduced-precision element types' conversions, bit-exact and header-only, for every layer
// that stores or reads them (.npy files today; the datapath's stores later): float32 to and
// from bfloat16 and IEEE binary16 (float16), rounding to nearest, ties to even. A float16
// conversion gives numpy's astype(np.float16) bit for bit (overflow to infinity, subnormals,
// NaN payloads as numpy keeps them); a bfloat16 one is the top 16 bits of the float32 rounded
// the same way, a NaN kept a quiet NaN of the same sign.
#pragma once

#include <cstdint>
#include <cstring>

namespace kpu::hw {

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
