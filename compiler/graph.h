// Graph IR: named tensors (rank 0 to 6, a dtype, a role, optional inline values) and ops of
// ONNX's vocabulary (a kind, ordered inputs and outputs, typed attributes). What each kind
// takes and infers is its schema in the op registry (compiler/ops/). check() infers missing
// shapes and roles and validates everything, naming the op, the tensor, the dimension and
// the numbers on any mismatch.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <unordered_map>
#include <variant>
#include <vector>

#include "compiler/bound_program.h"
#include "hardware/numeric.h"

namespace kpu::compiler {

// Each enum's names as graphs, .kpu files and bound programs spell them; the parsers return
// false on an unknown name. (Activation's are with the enum, in hardware/fabric_command.h.)
/// Element types (hardware/numeric.h): what graphs, the datapath and the files share.
using hw::DType;
using hw::dtype_bytes;
using hw::is_integer;
using hw::kDTypeNames;
using hw::parse_dtype;
using hw::to_string;

enum class TensorRole : uint8_t { Input, Constant, Intermediate, Output };
inline constexpr EnumName<TensorRole> kTensorRoleNames[] = {{TensorRole::Input, "input"},
                                                            {TensorRole::Constant, "constant"},
                                                            {TensorRole::Intermediate, "intermediate"},
                                                            {TensorRole::Output, "output"}};
inline const char* to_string(TensorRole role) { return hw::name_in(kTensorRoleNames, role); }
inline bool parse_role(const std::string& name, TensorRole& out) { return hw::value_in(kTensorRoleNames, name, out); }

/// The most dimensions a tensor may have (seed 4's max_tensor_dims).
constexpr size_t kMaxRank = 6;

/// Inline values of a constant tensor, row-major: int64 for integer dtypes, double otherwise
/// (ONNX's constant inputs: Reshape's shape, Slice's starts, Gather's indices, ...).
using TensorValue = std::variant<std::monostate, std::vector<int64_t>, std::vector<double>>;

/// An int8 or int32 tensor's affine quantization (ONNX QuantizeLinear): real = (q - zero_point)
/// * scale, one (scale, zero point) for the whole tensor or one per index of dimension `axis`
/// (a weight's output channels). Graph::check() validates it (docs/graph-format.md, Quantization).
struct Quantization {
    std::vector<float> scale;        ///< > 0 and finite; 1 value, or shape[axis] values
    std::vector<int32_t> zero_point; ///< as many as scale; int8: in [-128, 127]; int32: 0
    uint32_t axis = 0;               ///< the per-channel dimension (when scale has more than 1 value)
    bool per_channel() const { return scale.size() > 1; }
    bool operator==(const Quantization& o) const {
        return scale == o.scale && zero_point == o.zero_point && axis == o.axis;
    }
};

struct Tensor {
    Tensor() = default;
    Tensor(std::string name_, std::vector<uint64_t> shape_, DType dtype_ = DType::Float32,
           std::optional<TensorRole> role_ = std::nullopt)
        : name(std::move(name_)), shape(std::move(shape_)), dtype(dtype_), role(role_) {}

    std::string name;
    std::vector<uint64_t> shape;   ///< empty until known (inferred for op outputs), unless rank0
    DType dtype = DType::Float32;
    std::optional<TensorRole> role;  ///< inferred by Graph::check() when not given
    bool rank0 = false;            ///< a scalar: its shape [] is known (an empty shape otherwise means unknown)
    TensorValue value;             ///< inline values, when the graph gives them
    std::optional<Quantization> quant;  ///< int8 / int32 datapath tensors: how their values read as reals

    bool has_shape() const { return rank0 || !shape.empty(); }
    uint64_t elements() const;  ///< 0 while the shape is unknown; 1 for a scalar
    uint64_t bytes() const { return elements() * dtype_bytes(dtype); }
    bool operator==(const Tensor& other) const;
};

/// Index of an omitted optional input or output (ONNX's empty name).
constexpr uint32_t kNoTensor = UINT32_MAX;

/// A typed attribute value: ONNX's int, float, string, ints and floats.
using AttrValue = std::variant<int64_t, double, std::string, std::vector<int64_t>, std::vector<double>>;

/// An op: its kind names a schema of the op registry (compiler/ops/op_schema.h): ONNX's
/// operator names ("Softmax", "MatMul", ...) and "matmul", the fused C = act(A @ B + bias)
/// the fabric executes (inputs A, B, optional bias; output C; attribute "activation").
struct Op {
    std::string name;
    std::string kind = "matmul";
    std::vector<uint32_t> inputs;            ///< tensor indices in the schema's order; kNoTensor: omitted
    std::vector<uint32_t> outputs;           ///< tensor indices; kNoTensor: omitted optional output
    std::map<std::string, AttrValue> attributes;  ///< those given; the schema has the defaults
    /// The source ops a fusion pass absorbed into this one, in graph order (seed 4's
    /// fused_with; empty for an op no pass made).
    std::vector<std::string> fused_with;

    bool operator==(const Op& other) const;
};

class Graph {
public:
    /// Adds a tensor; throws CompileError if the name is taken or not a valid name.
    uint32_t add_tensor(Tensor tensor);
    /// Adds an op and returns its index in ops() until check() reorders them (find ops by
    /// name after it). An op without a name is called <its kind in lower case><that index>
    /// (matmul0), as in the JSON form. Throws CompileError if the name is taken or a tensor
    /// index is out of range.
    uint32_t add_op(Op op);

    const std::vector<Tensor>& tensors() const { return tensors_; }
    const std::vector<Op>& ops() const { return ops_; }
    const Tensor& tensor(uint32_t index) const { return tensors_.at(index); }
    Tensor& tensor(uint32_t index) { return tensors_.at(index); }
    /// By name, through an index (a graph of 100 000 ops is looked up once per name, not
    /// scanned). A tensor keeps the name it was added with: renaming one through tensor()
    /// is not supported.
    std::optional<uint32_t> find_tensor(const std::string& name) const;
    std::optional<uint32_t> find_op(const std::string& name) const;

    /// Ops in an order where every producer precedes its consumers; stable (ties keep the
    /// given order). Throws on a cycle or a tensor produced twice. Iterative: a chain of any
    /// length takes no stack.
    std::vector<uint32_t> topological_order(const std::string& source) const;

    /// Orders the ops topologically (the indices add_op returned may no longer hold),
    /// infers output shapes, dtypes and roles through each op's schema, and validates
    /// shapes, ranks, attributes, dtypes and roles. `source` prefixes every message.
    void check(const std::string& source);

    bool operator==(const Graph& other) const { return tensors_ == other.tensors_ && ops_ == other.ops_; }

private:
    std::vector<Tensor> tensors_;
    std::vector<Op> ops_;
    std::unordered_map<std::string, uint32_t> tensor_index_;  ///< name -> index in tensors_
    std::unordered_map<std::string, uint32_t> op_index_;      ///< name -> index in ops_ (rebuilt when check() reorders)
};

/// Why `tensor`'s quantization does not hold (its type, scale count, a scale of 0 or NaN, a
/// zero point outside the type's range), "" when it does or it has none.
std::string quantization_problem(const Tensor& tensor);

/// "[1024, 512]"
std::string shape_string(const std::vector<uint64_t>& shape);

/// Where `text` stops being UTF-8 (the index of the first byte that is not), or npos. Names
/// are JSON strings in graphs and .kpu files, which hold nothing else.
size_t invalid_utf8_at(const std::string& text);

/// What is wrong with `name` as a tensor name, or "" if nothing. kpu-sim reads and writes
/// tensors as <name>.npy, so a name must be one file name: not empty, not "." or "..", no
/// '/', '\\' or control characters, valid UTF-8, at most 200 bytes (an ONNX name like "/fc1/MatMul"
/// needs its slashes replaced).
std::string tensor_name_problem(const std::string& name);

/// The name of a tensor a compiler pass adds to `graph` for op `op`: "<op>.<part>", each '/'
/// or '\\' of the op's name (an ONNX node name is often a path, "/attn/Softmax") made '.', no
/// leading '.', and "_<n>" after it if the graph has a tensor of that name already.
std::string derived_tensor_name(const Graph& graph, const std::string& op, const std::string& part);

/// A weight: the values of a constant tensor whose values are not inline (an ONNX
/// model's initializers), row-major. They travel beside the .kpu (Program::weights).
struct Weight {
    /// {shape, values} and the like: the fields in order, the rest their defaults.
    Weight(std::vector<uint64_t> shape_ = {}, std::vector<float> values_ = {}, DType dtype_ = DType::Float32,
           std::vector<int32_t> integers_ = {})
        : shape(std::move(shape_)), values(std::move(values_)), dtype(dtype_), integers(std::move(integers_)) {}
    std::vector<uint64_t> shape;
    std::vector<float> values;    ///< float types (bfloat16 / float16: values those types hold exactly)
    DType dtype = DType::Float32;  ///< as stored beside the .kpu and in DRAM
    std::vector<int32_t> integers; ///< int8 and int32 weights' values (values is empty then)
};
/// Weights by tensor name.
using Weights = std::map<std::string, Weight>;

/// The largest tensor a graph may have: DRAM's address window on any config (1 TiB).
constexpr uint64_t kMaxTensorBytes = uint64_t(1) << 40;

}  // namespace kpu::compiler
