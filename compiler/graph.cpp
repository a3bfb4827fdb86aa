#include "compiler/graph.h"

#include <cctype>
#include <cmath>
#include <cstdio>
#include <map>
#include <sstream>

#include "compiler/compile_error.h"
#include "compiler/depth_first.h"
#include "compiler/ops/op_schema.h"

namespace kpu::compiler {

std::string shape_string(const std::vector<uint64_t>& shape) {
    std::ostringstream out;
    out << "[";
    for (size_t i = 0; i < shape.size(); ++i) out << (i ? ", " : "") << shape[i];
    out << "]";
    return out.str();
}

uint64_t Tensor::elements() const {
    uint64_t n = 1;
    for (uint64_t d : shape) n *= d;
    return has_shape() ? n : 0;
}

bool Tensor::operator==(const Tensor& o) const {
    return name == o.name && shape == o.shape && dtype == o.dtype && role == o.role && rank0 == o.rank0 &&
           value == o.value && quant == o.quant;
}

bool Op::operator==(const Op& o) const {
    return name == o.name && kind == o.kind && inputs == o.inputs && outputs == o.outputs &&
           attributes == o.attributes && fused_with == o.fused_with;
}

size_t invalid_utf8_at(const std::string& text) {
    for (size_t i = 0; i < text.size();) {
        const auto byte = [&](size_t at) { return static_cast<unsigned char>(text[at]); };
        const unsigned char c = byte(i);
        // The sequence length a lead byte announces, and the smallest second byte of the
        // valid ones (no overlong forms, no surrogates, nothing past U+10FFFF).
        size_t length = c < 0x80 ? 1 : c >= 0xc2 && c <= 0xdf ? 2 : c >= 0xe0 && c <= 0xef ? 3 : c >= 0xf0 && c <= 0xf4 ? 4 : 0;
        if (length == 0 || i + length > text.size()) return i;
        const unsigned char low = c == 0xe0 ? 0xa0 : c == 0xf0 ? 0x90 : 0x80;
        const unsigned char high = c == 0xed ? 0x9f : c == 0xf4 ? 0x8f : 0xbf;
        if (length > 1 && (byte(i + 1) < low || byte(i + 1) > high)) return i;
        for (size_t k = 2; k < length; ++k)
            if ((byte(i + k) & 0xc0) != 0x80) return i;
        i += length;
    }
    return std::string::npos;
}

namespace {

/// The problem of a name that is not UTF-8: "is not valid UTF-8 (byte 0x97 at 2)".
std::string utf8_problem(const std::string& name) {
    const size_t at = invalid_utf8_at(name);
    if (at == std::string::npos) return "";
    char hex[8];
    std::snprintf(hex, sizeof hex, "0x%02x", static_cast<unsigned char>(name[at]));
    return "is not valid UTF-8 (byte " + std::string(hex) + " at " + std::to_string(at) + ")";
}

}  // namespace

std::string tensor_name_problem(const std::string& name) {
    if (name.empty()) return "empty tensor name";
    if (const std::string utf8 = utf8_problem(name); !utf8.empty()) return "tensor name " + utf8;
    if (name.size() > 200) return "tensor name longer than 200 bytes (" + std::to_string(name.size()) + ")";
    if (name == "." || name == "..")
        return "tensor name '" + name + "' is not a file name (outputs are written as <name>.npy)";
    for (const char c : name)
        if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) return "tensor name has a control character";
    if (name.find_first_of("/\\") != std::string::npos)
        return "tensor name '" + name + "' has a '/' or '\\' (outputs are written as <name>.npy)";
    return "";
}

uint32_t Graph::add_tensor(Tensor tensor) {
    if (const std::string problem = tensor_name_problem(tensor.name); !problem.empty()) throw CompileError(problem);
    if (find_tensor(tensor.name)) throw CompileError("tensor '" + tensor.name + "' is declared twice");
    tensor_index_.emplace(tensor.name, uint32_t(tensors_.size()));
    tensors_.push_back(std::move(tensor));
    return uint32_t(tensors_.size() - 1);
}

uint32_t Graph::add_op(Op op) {
    std::string prefix;  // as the JSON form names an op without a name: matmul0, softmax3
    for (const char c : op.kind) prefix += char(std::tolower(static_cast<unsigned char>(c)));
    if (op.name.empty()) op.name = prefix + std::to_string(ops_.size());
    if (const std::string utf8 = utf8_problem(op.name); !utf8.empty())
        throw CompileError("op " + std::to_string(ops_.size()) + " (" + op.kind + "): its name " + utf8);
    for (const auto& [key, value] : op.attributes) {
        std::string utf8 = utf8_problem(key);
        if (const auto* text = std::get_if<std::string>(&value); utf8.empty() && text) utf8 = utf8_problem(*text);
        if (!utf8.empty())
            throw CompileError("op '" + op.name + "': an attribute's " + (utf8_problem(key).empty() ? "value " : "name ") +
                               utf8);
    }
    if (find_op(op.name)) {
        const bool default_like = op.name.rfind(prefix, 0) == 0 && op.name.size() > prefix.size() &&
                                  op.name.find_first_not_of("0123456789", prefix.size()) == std::string::npos;
        throw CompileError("op '" + op.name + "' is declared twice" +
                           (default_like ? " (an op without a name is called " + prefix + "<its index>)" : ""));
    }
    const OpSchema* schema = op_registry().find(op.kind);
    auto need = [&](const std::string& role, uint32_t t) {
        if (t != kNoTensor && t >= tensors_.size())
            throw CompileError("op '" + op.name + "': " + role + " is tensor " + std::to_string(t) + " but the graph has " +
                               std::to_string(tensors_.size()) + " tensors");
    };
    for (size_t i = 0; i < op.inputs.size(); ++i)
        need(schema ? schema->input_name(i) : "input " + std::to_string(i), op.inputs[i]);
    for (size_t i = 0; i < op.outputs.size(); ++i)
        need(schema ? schema->output_name(i) : "output " + std::to_string(i), op.outputs[i]);
    op_index_.emplace(op.name, uint32_t(ops_.size()));
    ops_.push_back(std::move(op));
    return uint32_t(ops_.size() - 1);
}

std::optional<uint32_t> Graph::find_tensor(const std::string& name) const {
    const auto it = tensor_index_.find(name);
    if (it == tensor_index_.end()) return std::nullopt;
    return it->second;
}

std::optional<uint32_t> Graph::find_op(const std::string& name) const {
    const auto it = op_index_.find(name);
    if (it == op_index_.end()) return std::nullopt;
    return it->second;
}

std::vector<uint32_t> Graph::topological_order(const std::string& source) const {
    std::map<uint32_t, uint32_t> producer;  // tensor -> op
    for (uint32_t i = 0; i < ops_.size(); ++i)
        for (uint32_t t : ops_[i].outputs) {
            if (t == kNoTensor) continue;
            auto [it, fresh] = producer.emplace(t, i);
            if (!fresh)
                throw CompileError(source + ": tensor '" + tensors_[t].name + "' is produced by op '" +
                                   ops_[it->second].name + "' and by op '" + ops_[i].name + "'");
        }
    // Depth-first, in the given order, so that the result is stable and a cycle can be named.
    std::vector<std::vector<int64_t>> inputs_from(ops_.size());  // per op, its inputs' producers (-1: none)
    for (uint32_t i = 0; i < ops_.size(); ++i)
        for (uint32_t t : ops_[i].inputs) {
            const auto it = producer.find(t);
            inputs_from[i].push_back(it == producer.end() ? -1 : int64_t(it->second));
        }
    return depth_first_order(
        uint32_t(ops_.size()), [&](uint32_t op) -> const std::vector<int64_t>& { return inputs_from[op]; },
        [&](const std::vector<uint32_t>& cycle) {
            std::string names;
            for (uint32_t op : cycle) names += (names.empty() ? "'" : " -> '") + ops_[op].name + "'";
            throw CompileError(source + ": the graph has a cycle: " + names);
        });
}

std::string quantization_problem(const Tensor& x) {
    if (!x.quant) return "";
    const Quantization& q = *x.quant;
    const auto n = [](auto v) { return std::to_string(v); };
    if (x.dtype != DType::Int8 && x.dtype != DType::Int32)
        return std::string("quantization is for int8 and int32 tensors, not ") + to_string(x.dtype);
    if (q.scale.empty()) return "quantization without a scale";
    if (q.zero_point.size() != q.scale.size())
        return n(q.scale.size()) + " scales but " + n(q.zero_point.size()) + " zero points";
    if (q.per_channel()) {
        if (q.axis >= x.shape.size())
            return "per-channel quantization on axis " + n(q.axis) + " of a rank-" + n(x.shape.size()) + " tensor";
        if (x.shape[q.axis] != q.scale.size())
            return n(q.scale.size()) + " scales for dimension " + n(q.axis) + " of size " + n(x.shape[q.axis]);
    }
    for (size_t i = 0; i < q.scale.size(); ++i)
        if (!(q.scale[i] > 0) || !std::isfinite(q.scale[i]))
            return "scale " + n(i) + " is " + (std::isnan(q.scale[i]) ? std::string("NaN") : std::to_string(q.scale[i])) +
                   " (a scale is finite and > 0)";
    const int32_t lo = x.dtype == DType::Int8 ? -128 : 0, hi = x.dtype == DType::Int8 ? 127 : 0;
    for (size_t i = 0; i < q.zero_point.size(); ++i)
        if (q.zero_point[i] < lo || q.zero_point[i] > hi)
            return "zero point " + n(i) + " is " + n(q.zero_point[i]) + ", outside [" + n(lo) + ", " + n(hi) + "] of " +
                   to_string(x.dtype);
    return "";
}

void Graph::check(const std::string& source) {
    if (ops_.empty()) throw CompileError(source + ": the graph has no ops");
    std::string unknown;  // every op of an unknown kind at once
    for (const Op& op : ops_)
        if (!op_registry().find(op.kind)) unknown += (unknown.empty() ? "" : ", ") + op.kind + " (" + op.name + ")";
    if (!unknown.empty()) throw CompileError(source + ": unknown operators: " + unknown);
    std::vector<Op> ordered;
    for (uint32_t i : topological_order(source)) ordered.push_back(std::move(ops_[i]));
    ops_ = std::move(ordered);
    op_index_.clear();
    for (uint32_t i = 0; i < ops_.size(); ++i) op_index_.emplace(ops_[i].name, i);

    std::vector<bool> produced(tensors_.size()), consumed(tensors_.size());
    for (const Op& op : ops_) {
        for (uint32_t t : op.outputs)
            if (t != kNoTensor) produced[t] = true;
        for (uint32_t t : op.inputs)
            if (t != kNoTensor) consumed[t] = true;
    }
    auto fail = [&](const std::string& what) { throw CompileError(source + ": " + what); };
    for (uint32_t t = 0; t < tensors_.size(); ++t) {
        Tensor& x = tensors_[t];
        const std::string name = "tensor '" + x.name + "'";
        if (!produced[t] && !consumed[t]) fail(name + " is not used by any op");
        if (x.shape.size() > kMaxRank)
            fail(name + " has rank " + std::to_string(x.shape.size()) + " (shape " + shape_string(x.shape) +
                 "), more than " + std::to_string(kMaxRank));
        for (size_t d = 0; d < x.shape.size(); ++d)
            if (x.shape[d] == 0) fail(name + ": dimension " + std::to_string(d) + " is 0");
        if (x.rank0 && !x.shape.empty()) fail(name + " is marked rank 0 but has shape " + shape_string(x.shape));
        if (!produced[t]) {
            if (!x.has_shape()) fail(name + ": no shape given and no op produces it");
            if (x.role && *x.role != TensorRole::Input && *x.role != TensorRole::Constant)
                fail(name + " has role '" + to_string(*x.role) + "' but no op produces it");
            if (!x.role) x.role = std::holds_alternative<std::monostate>(x.value) ? TensorRole::Input : TensorRole::Constant;
        } else {
            if (x.role && (*x.role == TensorRole::Input || *x.role == TensorRole::Constant))
                fail(name + " has role '" + to_string(*x.role) + "' but an op produces it");
            if (x.role && *x.role == TensorRole::Intermediate && !consumed[t])
                fail(name + " has role 'intermediate' but no op reads it (a result no op reads is an output)");
            if (!x.role) x.role = consumed[t] ? TensorRole::Intermediate : TensorRole::Output;
        }
        const size_t values = std::visit(
            [](const auto& v) -> size_t {
                if constexpr (std::is_same_v<std::decay_t<decltype(v)>, std::monostate>) return 0;
                else return v.size();
            },
            x.value);
        if (const auto* doubles = std::get_if<std::vector<double>>(&x.value))
            for (size_t i = 0; i < doubles->size(); ++i)
                if (!std::isfinite((*doubles)[i]))
                    fail(name + ": inline value " + std::to_string(i) + " is " +
                         (std::isnan((*doubles)[i]) ? "NaN" : "infinite") +
                         " (inline values are JSON numbers; give the tensor as a weight .npy)");
        if (!std::holds_alternative<std::monostate>(x.value) && values != x.elements())
            fail(name + " has " + std::to_string(values) + " inline values but shape " + shape_string(x.shape) +
                 " holds " + std::to_string(x.elements()));
    }
    for (const Op& op : ops_) check_op(tensors_, op, schema_of(op), source);
    for (const Tensor& x : tensors_)
        if (const std::string problem = quantization_problem(x); !problem.empty())
            fail("tensor '" + x.name + "': " + problem);
    // Every tensor lives in DRAM, whose address window is 1 TiB on any config; this also keeps
    // every element count and tile count the compiler derives far from overflowing.
    for (const Tensor& x : tensors_) {
        uint64_t bytes = dtype_bytes(x.dtype);
        for (uint64_t d : x.shape) bytes = d > kMaxTensorBytes / bytes ? kMaxTensorBytes + 1 : bytes * d;
        if (bytes > kMaxTensorBytes)
            fail("tensor '" + x.name + "': shape " + shape_string(x.shape) + " is more than 1 TiB of " +
                 to_string(x.dtype) + " (the DRAM address window of any config)");
    }
}

std::string derived_tensor_name(const Graph& graph, const std::string& op, const std::string& part) {
    std::string base;
    for (const char c : op + "." + part) {
        const bool separator = c == '/' || c == '\\';
        if (!separator) base += c;
        else if (!base.empty() && base.back() != '.') base += '.';
    }
    std::string out = base;
    for (int i = 1; graph.find_tensor(out); ++i) out = base + "_" + std::to_string(i);
    return out;
}

}  // namespace kpu::compiler
