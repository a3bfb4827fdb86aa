#include "compiler/high_water.h"

#include <algorithm>

namespace kpu::compiler {

namespace {

/// Elements from a VectorOperand's first value to past its last over `rows` rows of `cols`.
uint64_t operand_elements(const hw::VectorOperand& x, uint64_t rows, uint64_t cols) {
    switch (x.broadcast) {
        case hw::Broadcast::Scalar: return 1;
        case hw::Broadcast::Row: return cols;
        case hw::Broadcast::Column: return (rows - 1) * x.ld + 1;
        case hw::Broadcast::None: break;
    }
    return (rows - 1) * x.ld + cols;
}

/// Elements of a row-major m x n block with rows `ld` apart.
uint64_t block_elements(uint64_t m, uint64_t n, uint64_t ld) { return m == 0 || n == 0 ? 0 : (m - 1) * ld + n; }

}  // namespace

void for_each_footprint(const BoundOp& op, const std::function<void(uint64_t, uint64_t)>& touch) {
    // Operands of the commands' element types; the rest (a partial sum, a bias (int32 after
    // int8 matmuls), a scale, a residual, a norm's weight and bias, the row statistics) 4 bytes.
    constexpr uint64_t f = 4;
    switch (op.kind) {
        case BoundOp::Kind::Move: {
            const hw::Transfer& x = op.move;
            touch(x.src, x.src_extent());
            if (x.transform == hw::Transform::Transpose)  // a row per source column
                touch(x.dst, uint64_t(x.row_bytes / x.elem_bytes - 1) * x.dst_stride + uint64_t(x.rows) * x.elem_bytes);
            else
                touch(x.dst, x.dst_extent());
            return;
        }
        case BoundOp::Kind::Matmul: {
            const hw::MatmulCommand& c = op.matmul;
            const uint64_t e = dtype_bytes(c.type);
            touch(c.a, e * block_elements(c.m, c.k, c.lda));
            touch(c.b, e * block_elements(c.k, c.n, c.ldb));
            if (c.load_c) touch(c.c, f * block_elements(c.m, c.n, c.ldc));
            return;
        }
        case BoundOp::Kind::Drain: {
            const hw::DrainCommand& c = op.drain;
            touch(c.c, dtype_bytes(c.out_type) * block_elements(c.m, c.n, c.ldc));
            if (c.has_bias) touch(c.bias, f * c.n);
            if (c.has_scale) touch(c.scale, f * c.n);
            if (c.has_residual) touch(c.residual, f * block_elements(c.m, c.n, c.ldr));
            return;
        }
        case BoundOp::Kind::Vector: {
            const hw::VectorCommand& c = op.vector;
            touch(c.a.addr, dtype_bytes(c.a.encoding.type) * operand_elements(c.a, c.rows, c.cols));
            if (c.has_b) touch(c.b.addr, dtype_bytes(c.b.encoding.type) * operand_elements(c.b, c.rows, c.cols));
            touch(c.y.addr, dtype_bytes(c.y.encoding.type) * block_elements(c.rows, hw::y_cols(c), c.y.ld));
            if (c.has_weight) touch(c.weight, f * hw::weight_elements(c));
            if (c.has_bias) touch(c.bias, f * hw::bias_elements(c));
            if (hw::uses_state(c.function)) touch(c.state, f * 3 * uint64_t(c.rows));
            return;
        }
    }
}

HighWater high_water(const BoundProgram& program, const hw::AddressMap& map, const std::vector<bool>* done) {
    HighWater marks;
    const auto touch = [&](uint64_t addr, uint64_t extent) {
        hw::Location first, last;
        if (extent == 0 || !map.decode(addr, 1, first) || !map.decode(addr + extent - 1, 1, last)) return;
        uint64_t& mark = marks.bytes[int(first.level)];
        if (first.level == hw::Level::Dram)
            mark = std::max(mark, addr + extent);
        else  // the instances of a level have one capacity: a tile's share is index x capacity + offset
            mark = std::max(mark, uint64_t(last.index) * last.capacity + last.offset + 1);
    };
    for (const BoundOp& op : program.ops)
        if (!done || (*done)[op.id]) for_each_footprint(op, touch);
    return marks;
}

}  // namespace kpu::compiler
