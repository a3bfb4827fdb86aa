#include "compiler/graph.h"

#include <map>
#include <sstream>

#include "compiler/compile_error.h"

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
    return shape.empty() ? 0 : n;
}

bool Tensor::operator==(const Tensor& o) const {
    return name == o.name && shape == o.shape && dtype == o.dtype && role == o.role;
}

bool Op::operator==(const Op& o) const {
    return name == o.name && kind == o.kind && a == o.a && b == o.b && c == o.c && bias == o.bias &&
           activation == o.activation;
}

std::string tensor_name_problem(const std::string& name) {
    if (name.empty()) return "empty tensor name";
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
    tensors_.push_back(std::move(tensor));
    return uint32_t(tensors_.size() - 1);
}

uint32_t Graph::add_op(Op op) {
    if (op.name.empty()) op.name = "matmul" + std::to_string(ops_.size());  // as the JSON form names it
    if (find_op(op.name)) {
        const bool default_like = op.name.rfind("matmul", 0) == 0 && op.name.size() > 6 &&
                                  op.name.find_first_not_of("0123456789", 6) == std::string::npos;
        throw CompileError("op '" + op.name + "' is declared twice" +
                           (default_like ? std::string(" (an op without a name is called matmul<its index>)") : ""));
    }
    auto need = [&](const char* role, uint32_t t) {
        if (t >= tensors_.size())
            throw CompileError("op '" + op.name + "': " + role + " is tensor " + std::to_string(t) + " but the graph has " +
                               std::to_string(tensors_.size()) + " tensors");
    };
    need("A", op.a), need("B", op.b), need("C", op.c);
    if (op.bias) need("bias", *op.bias);
    ops_.push_back(std::move(op));
    return uint32_t(ops_.size() - 1);
}

std::optional<uint32_t> Graph::find_tensor(const std::string& name) const {
    for (uint32_t i = 0; i < tensors_.size(); ++i)
        if (tensors_[i].name == name) return i;
    return std::nullopt;
}

std::optional<uint32_t> Graph::find_op(const std::string& name) const {
    for (uint32_t i = 0; i < ops_.size(); ++i)
        if (ops_[i].name == name) return i;
    return std::nullopt;
}

namespace {

std::vector<uint32_t> op_inputs(const Op& op) {
    std::vector<uint32_t> in{op.a, op.b};
    if (op.bias) in.push_back(*op.bias);
    return in;
}

}  // namespace

std::vector<uint32_t> Graph::topological_order(const std::string& source) const {
    std::map<uint32_t, uint32_t> producer;  // tensor -> op
    for (uint32_t i = 0; i < ops_.size(); ++i) {
        auto [it, fresh] = producer.emplace(ops_[i].c, i);
        if (!fresh)
            throw CompileError(source + ": tensor '" + tensors_[ops_[i].c].name + "' is produced by op '" +
                               ops_[it->second].name + "' and by op '" + ops_[i].name + "'");
    }
    // Depth-first, in the given order, so that the result is stable and a cycle can be named.
    std::vector<uint8_t> state(ops_.size(), 0);  // 0 new, 1 on the path, 2 done
    std::vector<uint32_t> order, path;
    auto visit = [&](auto&& self, uint32_t op) -> void {
        if (state[op] == 2) return;
        path.push_back(op);
        if (state[op] == 1) {
            std::string cycle;
            for (size_t i = 0; i < path.size(); ++i)
                if (path[i] == op || !cycle.empty()) cycle += (cycle.empty() ? "'" : " -> '") + ops_[path[i]].name + "'";
            throw CompileError(source + ": the graph has a cycle: " + cycle);
        }
        state[op] = 1;
        for (uint32_t t : op_inputs(ops_[op])) {
            auto it = producer.find(t);
            if (it != producer.end()) self(self, it->second);
        }
        state[op] = 2;
        path.pop_back();
        order.push_back(op);
    };
    for (uint32_t i = 0; i < ops_.size(); ++i) visit(visit, i);
    return order;
}

void Graph::check(const std::string& source) {
    if (ops_.empty()) throw CompileError(source + ": the graph has no ops");
    std::vector<Op> ordered;
    for (uint32_t i : topological_order(source)) ordered.push_back(ops_[i]);
    ops_ = std::move(ordered);

    std::vector<bool> produced(tensors_.size()), consumed(tensors_.size());
    for (const Op& op : ops_) {
        produced[op.c] = true;
        for (uint32_t t : op_inputs(op)) consumed[t] = true;
    }
    auto fail = [&](const std::string& what) { throw CompileError(source + ": " + what); };
    for (uint32_t t = 0; t < tensors_.size(); ++t) {
        Tensor& x = tensors_[t];
        const std::string name = "tensor '" + x.name + "'";
        if (!produced[t] && !consumed[t]) fail(name + " is not used by any op");
        for (size_t d = 0; d < x.shape.size(); ++d)
            if (x.shape[d] == 0) fail(name + ": dimension " + std::to_string(d) + " is 0");
        if (!produced[t]) {
            if (x.shape.empty()) fail(name + ": no shape given and no op produces it");
            if (x.role && *x.role != TensorRole::Input && *x.role != TensorRole::Constant)
                fail(name + " has role '" + to_string(*x.role) + "' but no op produces it");
            if (!x.role) x.role = TensorRole::Input;
        } else {
            if (x.role && (*x.role == TensorRole::Input || *x.role == TensorRole::Constant))
                fail(name + " has role '" + to_string(*x.role) + "' but an op produces it");
            if (x.role && *x.role == TensorRole::Intermediate && !consumed[t])
                fail(name + " has role 'intermediate' but no op reads it (a result no op reads is an output)");
            if (!x.role) x.role = consumed[t] ? TensorRole::Intermediate : TensorRole::Output;
        }
    }
    for (const Op& op : ops_) {
        const std::string where = "op '" + op.name + "' (matmul): ";
        auto operand = [&](const char* role, uint32_t t) {
            return std::string(role) + " '" + tensors_[t].name + "'";
        };
        auto need_rank = [&](const char* role, uint32_t t, size_t rank) {
            if (tensors_[t].shape.size() != rank)
                fail(where + operand(role, t) + " has shape " + shape_string(tensors_[t].shape) + ", expected rank " +
                     std::to_string(rank));
        };
        need_rank("A", op.a, 2);
        need_rank("B", op.b, 2);
        const auto& a = tensors_[op.a].shape;
        const auto& b = tensors_[op.b].shape;
        if (a[1] != b[0])
            fail(where + operand("A", op.a) + " dimension 1 is " + std::to_string(a[1]) + " but " + operand("B", op.b) +
                 " dimension 0 is " + std::to_string(b[0]));
        if (op.bias) {
            need_rank("bias", *op.bias, 1);
            uint64_t bn = tensors_[*op.bias].shape[0];
            if (bn != b[1])
                fail(where + operand("bias", *op.bias) + " dimension 0 is " + std::to_string(bn) + " but " +
                     operand("B", op.b) + " dimension 1 is " + std::to_string(b[1]));
        }
        auto& c = tensors_[op.c].shape;
        if (c.empty()) {
            c = {a[0], b[1]};
        } else {
            need_rank("C", op.c, 2);
            if (c[0] != a[0])
                fail(where + operand("C", op.c) + " dimension 0 is " + std::to_string(c[0]) + " but " +
                     operand("A", op.a) + " dimension 0 is " + std::to_string(a[0]));
            if (c[1] != b[1])
                fail(where + operand("C", op.c) + " dimension 1 is " + std::to_string(c[1]) + " but " +
                     operand("B", op.b) + " dimension 1 is " + std::to_string(b[1]));
        }
    }
    // Every tensor lives in DRAM, whose address window is 1 TiB on any config; this also keeps
    // every element count and tile count the compiler derives far from overflowing.
    for (const Tensor& x : tensors_) {
        uint64_t bytes = 4;
        for (uint64_t d : x.shape) bytes = d > kMaxTensorBytes / bytes ? kMaxTensorBytes + 1 : bytes * d;
        if (bytes > kMaxTensorBytes)
            fail("tensor '" + x.name + "': shape " + shape_string(x.shape) +
                 " is more than 1 TiB of float32 (the DRAM address window of any config)");
    }
}

}  // namespace kpu::compiler
