// Graph IR: named tensors (shape, dtype, role) and ops with typed attributes. A matmul op
// carries its epilogue (bias, activation) as attributes, which is exactly what the fabric's
// drain executes. check() infers missing shapes and roles and validates everything, naming
// the op, the tensor, the dimension and the two numbers on any mismatch.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "compiler/bound_program.h"

namespace kpu::compiler {

// Each enum's names as graphs, .kpu files and bound programs spell them; the parsers return
// false on an unknown name. (Activation's are with the enum, in hardware/fabric_command.h.)
enum class DType : uint8_t { Float32 };
inline constexpr EnumName<DType> kDTypeNames[] = {{DType::Float32, "float32"}};
inline const char* to_string(DType dtype) { return hw::name_in(kDTypeNames, dtype); }
inline bool parse_dtype(const std::string& name, DType& out) { return hw::value_in(kDTypeNames, name, out); }

enum class TensorRole : uint8_t { Input, Constant, Intermediate, Output };
inline constexpr EnumName<TensorRole> kTensorRoleNames[] = {{TensorRole::Input, "input"},
                                                            {TensorRole::Constant, "constant"},
                                                            {TensorRole::Intermediate, "intermediate"},
                                                            {TensorRole::Output, "output"}};
inline const char* to_string(TensorRole role) { return hw::name_in(kTensorRoleNames, role); }
inline bool parse_role(const std::string& name, TensorRole& out) { return hw::value_in(kTensorRoleNames, name, out); }

enum class OpKind : uint8_t { Matmul };
inline constexpr EnumName<OpKind> kOpKindNames[] = {{OpKind::Matmul, "matmul"}};
inline const char* to_string(OpKind kind) { return hw::name_in(kOpKindNames, kind); }
inline bool parse_op_kind(const std::string& name, OpKind& out) { return hw::value_in(kOpKindNames, name, out); }

struct Tensor {
    std::string name;
    std::vector<uint64_t> shape;   ///< empty until known (inferred for op outputs)
    DType dtype = DType::Float32;
    std::optional<TensorRole> role;  ///< inferred by Graph::check() when not given

    uint64_t elements() const;
    uint64_t bytes() const { return elements() * 4; }
    bool operator==(const Tensor& other) const;
};

/// C[M,N] = activation(A[M,K] @ B[K,N] (+ bias[N])), row-major fp32.
struct Op {
    std::string name;
    OpKind kind = OpKind::Matmul;
    uint32_t a = 0, b = 0, c = 0;      ///< tensor indices
    std::optional<uint32_t> bias;      ///< tensor index of bias[N]
    Activation activation = Activation::None;

    bool operator==(const Op& other) const;
};

class Graph {
public:
    /// Adds a tensor; throws CompileError if the name is taken or not a valid name.
    uint32_t add_tensor(Tensor tensor);
    /// Adds an op and returns its index in ops() until check() reorders them (find ops by
    /// name after it). An op without a name is called matmul<that index>, as in the JSON
    /// form. Throws CompileError if the name is taken or a tensor index is out of range.
    uint32_t add_op(Op op);

    const std::vector<Tensor>& tensors() const { return tensors_; }
    const std::vector<Op>& ops() const { return ops_; }
    const Tensor& tensor(uint32_t index) const { return tensors_.at(index); }
    Tensor& tensor(uint32_t index) { return tensors_.at(index); }
    std::optional<uint32_t> find_tensor(const std::string& name) const;
    std::optional<uint32_t> find_op(const std::string& name) const;

    /// Ops in an order where every producer precedes its consumers; stable (ties keep the
    /// given order). Throws on a cycle or a tensor produced twice.
    std::vector<uint32_t> topological_order(const std::string& source) const;

    /// Orders the ops topologically (the indices add_op returned may no longer hold),
    /// infers output shapes and roles, and validates shapes, dtypes and roles. `source`
    /// prefixes every message.
    void check(const std::string& source);

    /// Matmul dimensions of op `index` (valid after check()).
    uint64_t m(uint32_t op) const { return tensors_[ops_[op].a].shape[0]; }
    uint64_t n(uint32_t op) const { return tensors_[ops_[op].b].shape[1]; }
    uint64_t k(uint32_t op) const { return tensors_[ops_[op].a].shape[1]; }

    bool operator==(const Graph& other) const { return tensors_ == other.tensors_ && ops_ == other.ops_; }

private:
    std::vector<Tensor> tensors_;
    std::vector<Op> ops_;
};

/// "[1024, 512]"
std::string shape_string(const std::vector<uint64_t>& shape);

/// What is wrong with `name` as a tensor name, or "" if nothing. kpu-sim reads and writes
/// tensors as <name>.npy, so a name must be one file name: not empty, not "." or "..", no
/// '/', '\\' or control characters, at most 200 bytes (an ONNX name like "/fc1/MatMul"
/// needs its slashes replaced).
std::string tensor_name_problem(const std::string& name);

/// The largest tensor a graph may have: DRAM's address window on any config (1 TiB).
constexpr uint64_t kMaxTensorBytes = uint64_t(1) << 40;

}  // namespace kpu::compiler
