#include "compiler/bound_program_json.h"

#include <sstream>

#include <nlohmann/json.hpp>

namespace kpu::compiler {

namespace {

using json = nlohmann::json;

json tensor_json(const BoundTensor& t) {
    json j = {{"name", t.name}, {"shape", t.shape},         {"dtype", t.dtype},
              {"role", t.role}, {"dram_addr", t.dram_addr}, {"bytes", t.bytes}};
    if (t.in_l3) j["in_l3"] = true;  // dram_addr is an L3 address (keep-in-l3)
    return j;
}

json op_json(const BoundOp& op) {
    json o = {{"id", op.id},     {"kind", to_string(op.kind)}, {"engine", to_string(op.engine)},
              {"tile", op.tile}, {"unit", op.unit},            {"dfx_op", op.dfx_op},
              {"deps", op.deps}};
    if (op.kind == BoundOp::Kind::Move)
        o["move"] = {{"src", op.move.src},         {"dst", op.move.dst},
                     {"rows", op.move.rows},       {"row_bytes", op.move.row_bytes},
                     {"src_stride", op.move.src_stride}, {"dst_stride", op.move.dst_stride}};
    if (op.kind == BoundOp::Kind::Move && !op.move.plain()) {  // a gather: its zero fill and outer dimensions
        o["move"]["row_pad"] = {op.move.row_pad_before, op.move.row_pad_after};
        json outer = json::array();
        for (const hw::TransferDim& d : op.move.outer)
            outer.push_back({{"count", d.count},
                             {"src_stride", d.src_stride},
                             {"dst_stride", d.dst_stride},
                             {"pad", {d.pad_before, d.pad_after}}});
        o["move"]["outer"] = outer;
        if (op.move.fill) o["move"]["fill"] = op.move.fill;  // an int8 input's zero point
    }
    if (op.kind == BoundOp::Kind::Matmul)
        o["matmul"] = {{"a", op.matmul.a},     {"b", op.matmul.b}, {"lda", op.matmul.lda},
                       {"ldb", op.matmul.ldb}, {"m", op.matmul.m}, {"n", op.matmul.n},
                       {"k", op.matmul.k},     {"accumulate", op.matmul.accumulate}};
    // The element types, when not float32 (a float32 program's file is as before).
    if (op.kind == BoundOp::Kind::Matmul && op.matmul.type != hw::DType::Float32) {
        o["matmul"]["type"] = to_string(op.matmul.type);
        if (op.matmul.type == hw::DType::Int8) o["matmul"]["a_zero"] = op.matmul.a_zero, o["matmul"]["b_zero"] = op.matmul.b_zero;
    }
    if (op.kind == BoundOp::Kind::Matmul && op.matmul.load_c) {
        o["matmul"]["load_c"] = true;
        o["matmul"]["c"] = op.matmul.c;
        o["matmul"]["ldc"] = op.matmul.ldc;
    }
    if (op.kind == BoundOp::Kind::Drain)
        o["drain"] = {{"c", op.drain.c},
                      {"ldc", op.drain.ldc},
                      {"m", op.drain.m},
                      {"n", op.drain.n},
                      {"has_bias", op.drain.has_bias},
                      {"bias", op.drain.bias},
                      {"activation", to_string(op.drain.activation)}};
    if (op.kind == BoundOp::Kind::Drain && op.drain.alpha != 1.0f) o["drain"]["alpha"] = op.drain.alpha;
    if (op.kind == BoundOp::Kind::Drain && op.drain.beta != 1.0f) o["drain"]["beta"] = op.drain.beta;
    if (op.kind == BoundOp::Kind::Drain && op.drain.has_scale) o["drain"]["scale"] = op.drain.scale;
    if (op.kind == BoundOp::Kind::Drain && op.drain.has_residual)
        o["drain"]["residual"] = op.drain.residual, o["drain"]["ldr"] = op.drain.ldr;
    if (op.kind == BoundOp::Kind::Drain && op.drain.out_type != hw::DType::Float32) {
        o["drain"]["out_type"] = to_string(op.drain.out_type);
        if (op.drain.out_type == hw::DType::Int8) o["drain"]["out_zero"] = op.drain.out_zero;
    }
    if (op.kind == BoundOp::Kind::Vector) {
        const hw::VectorCommand& v = op.vector;
        const auto operand = [](const hw::VectorOperand& x) {
            json j{{"addr", x.addr}, {"ld", x.ld}, {"broadcast", to_string(x.broadcast)}};
            if (x.encoding.type != hw::DType::Float32) j["type"] = to_string(x.encoding.type);
            if (x.encoding.type == hw::DType::Int8) j["scale"] = x.encoding.scale, j["zero_point"] = x.encoding.zero_point;
            return j;
        };
        o["vector"] = {{"function", to_string(v.function)}, {"rows", v.rows}, {"cols", v.cols},
                       {"a", operand(v.a)},                 {"y", operand(v.y)}};
        if (v.has_b) o["vector"]["b"] = operand(v.b);
        if (v.has_weight) o["vector"]["weight"] = v.weight;
        if (v.has_bias) o["vector"]["bias"] = v.bias;
        if (hw::traits_of(v.function).shape == hw::VectorShape::Window) {
            const hw::VectorWindow& w = v.window;
            o["vector"]["window"] = {{"in", {w.in_h, w.in_w}},          {"out", {w.out_h, w.out_w}},
                                     {"kernel", {w.kernel_h, w.kernel_w}}, {"strides", {w.stride_h, w.stride_w}},
                                     {"dilations", {w.dilation_h, w.dilation_w}},
                                     {"pads", {w.pad_top, w.pad_left, w.pad_bottom, w.pad_right}},
                                     {"count_include_pad", w.count_include_pad}, {"channels", w.channels},
                                     {"first_plane", w.first_plane},  {"scales", {w.scale_h, w.scale_w}}};
        }
    }
    return o;
}

}  // namespace

std::string write_bound_program(const BoundProgram& bound) {
    json tensors = json::array();
    for (const BoundTensor& t : bound.tensors) tensors.push_back(tensor_json(t));
    std::ostringstream out;
    out << "{\n \"config\": " << json(bound.config_name).dump() << ",\n \"dram_read_bytes\": " << bound.dram_read_bytes
        << ",\n \"dram_write_bytes\": " << bound.dram_write_bytes << ",\n \"macs\": " << bound.macs
        << ",\n \"elided_moves\": " << bound.elided_moves << ",\n \"elided_bytes\": " << bound.elided_bytes
        << ",\n \"tensors\": " << tensors.dump() << ",\n \"ops\": [";
    // One op per line: the file diffs and greps by op.
    for (size_t i = 0; i < bound.ops.size(); ++i) out << (i ? ",\n  " : "\n  ") << op_json(bound.ops[i]).dump();
    out << "\n ]\n}\n";
    return out.str();
}

}  // namespace kpu::compiler
