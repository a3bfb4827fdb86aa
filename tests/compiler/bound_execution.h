// Executes a bound program functionally, in plain loops, in a random order that honours its
// dependencies (as an out-of-order sequencer may): what the compiler tests check a binding's
// values and ordering with. Moves follow hw::Transfer's definition (transposes, outer
// dimensions, zero fill); matmuls and drains use one accumulator set per compute tile.
#pragma once

#include <algorithm>
#include <array>
#include <cstdint>
#include <map>
#include <random>
#include <unordered_map>
#include <vector>

#include <gtest/gtest.h>

#include "compiler/bound_program.h"

namespace kpu::compiler::test {

/// Device memory of floats, by address.
class Memory {
public:
    float& at(uint64_t addr) { return pages_[addr >> 12][(addr & 4095) / 4]; }

private:
    std::unordered_map<uint64_t, std::array<float, 1024>> pages_;
};

inline void execute_move(const hw::Transfer& t, Memory& mem) {
    if (t.transform == hw::Transform::Transpose) {
        for (uint32_t r = 0; r < t.rows; ++r)
            for (uint32_t c = 0; c < t.row_bytes / 4; ++c)
                mem.at(t.dst + c * t.dst_stride + r * 4) = mem.at(t.src + r * t.src_stride + c * 4);
        return;
    }
    const hw::TransferDim &o0 = t.outer[0], &o1 = t.outer[1];
    for (uint32_t j = 0; j < o1.count; ++j)
        for (uint32_t i = 0; i < o0.count; ++i)
            for (uint32_t r = 0; r < t.rows; ++r) {
                const bool valid = r >= t.row_pad_before && r < t.rows - t.row_pad_after && i >= o0.pad_before &&
                                   i < o0.count - o0.pad_after && j >= o1.pad_before && j < o1.count - o1.pad_after;
                const uint64_t dst = t.dst + r * t.dst_stride + i * o0.dst_stride + j * o1.dst_stride;
                const uint64_t src = t.src + (r - t.row_pad_before) * t.src_stride + (i - o0.pad_before) * o0.src_stride +
                                     (j - o1.pad_before) * o1.src_stride;
                for (uint32_t c = 0; c < t.row_bytes; c += 4) mem.at(dst + c) = valid ? mem.at(src + c) : 0.0f;
            }
}

/// Runs every op of `b` on `mem`, in a random dependency order drawn from `seed`.
inline void execute(const BoundProgram& b, Memory& mem, uint32_t seed) {
    std::vector<uint32_t> waiting(b.ops.size()), ready;
    std::vector<std::vector<uint32_t>> users(b.ops.size());
    for (const BoundOp& op : b.ops) {
        waiting[op.id] = uint32_t(op.deps.size());
        for (uint32_t d : op.deps) users[d].push_back(op.id);
        if (op.deps.empty()) ready.push_back(op.id);
    }
    std::mt19937 rng(seed);
    std::map<uint32_t, std::vector<float>> acc;  // per compute tile
    size_t done = 0;
    while (!ready.empty()) {
        std::swap(ready[rng() % ready.size()], ready.back());
        const BoundOp& op = b.ops[ready.back()];
        ready.pop_back();
        ++done;
        if (op.kind == BoundOp::Kind::Move) {
            execute_move(op.move, mem);
        } else if (op.kind == BoundOp::Kind::Matmul) {
            const MatmulCommand& m = op.matmul;
            std::vector<float>& a = acc[op.tile];
            if (!m.accumulate) {
                a.assign(size_t(m.m) * m.n, 0.f);
                if (m.load_c)  // a later K pass: the partial sum comes back
                    for (uint32_t i = 0; i < m.m; ++i)
                        for (uint32_t j = 0; j < m.n; ++j) a[i * m.n + j] = mem.at(m.c + (uint64_t(i) * m.ldc + j) * 4);
            }
            ASSERT_EQ(a.size(), size_t(m.m) * m.n);
            for (uint32_t i = 0; i < m.m; ++i)
                for (uint32_t j = 0; j < m.n; ++j)
                    for (uint32_t k = 0; k < m.k; ++k)
                        a[i * m.n + j] += mem.at(m.a + (uint64_t(i) * m.lda + k) * 4) * mem.at(m.b + (uint64_t(k) * m.ldb + j) * 4);
        } else if (op.kind == BoundOp::Kind::Drain) {
            const DrainCommand& d = op.drain;
            ASSERT_TRUE(d.activation == Activation::None || d.activation == Activation::Relu);
            const std::vector<float>& a = acc[op.tile];
            for (uint32_t i = 0; i < d.m; ++i)
                for (uint32_t j = 0; j < d.n; ++j) {
                    float v = d.alpha * a[i * d.n + j] + (d.has_bias ? d.beta * mem.at(d.bias + j * 4) : 0.f);
                    if (d.has_scale) v = v * mem.at(d.scale + j * 4);
                    if (d.has_residual) v = v + mem.at(d.residual + (uint64_t(i) * d.ldr + j) * 4);
                    if (d.activation == Activation::Relu) v = std::max(v, 0.f);
                    mem.at(d.c + (uint64_t(i) * d.ldc + j) * 4) = v;
                }
        } else {
            ADD_FAILURE() << "op " << op.id << ": no functional model of a " << to_string(op.kind) << " op";
        }
        for (uint32_t u : users[op.id])
            if (--waiting[u] == 0) ready.push_back(u);
    }
    EXPECT_EQ(done, b.ops.size());
}

}  // namespace kpu::compiler::test
