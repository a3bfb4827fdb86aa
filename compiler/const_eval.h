// Compile-time evaluation of ops on known values: the ONNX importer's shape computations and
// the fold-constants pass (docs/compiler.md, "Passes") both evaluate with it.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "compiler/graph.h"

namespace kpu::compiler {

/// Evaluations stop at this many elements (a larger result stays an op).
constexpr uint64_t kFoldLimit = uint64_t(1) << 20;

/// A value known at compile time.
struct ConstValue {
    DType dtype = DType::Float32;
    std::vector<uint64_t> shape;
    std::vector<double> values;  ///< row-major (integers are exact up to 2^53)
    uint64_t elements() const {
        uint64_t n = 1;
        for (uint64_t d : shape) n *= d;
        return n;
    }
    /// The values as integers; beyond int64's range (Slice's "to the end", INT64_MAX, is
    /// not exact in a double) they saturate.
    std::vector<int64_t> ints() const;
};

/// The values of tensor `t` of `graph` when known at compile time: inline (float ones as float32
/// holds them, as the device reads them), or a constant's entry of `weights` (may be null).
std::optional<ConstValue> known_value(const Graph& graph, uint32_t t, const Weights* weights);

/// Erases from `weights` (may be null) the entries of `names` that `graph` (a folding pass's
/// result) no longer has: a folded op's inputs and intermediate results are no program weights.
void drop_unused_weights(const Graph& graph, const std::vector<std::string>& names, Weights* weights);

/// ONNX Shape of a tensor of shape `shape` with its start and end attributes.
ConstValue shape_value(const std::vector<uint64_t>& shape, int64_t start, int64_t end);

/// An op of kind `kind` (Identity, Reshape, Unsqueeze, Squeeze, Concat of vectors, Gather,
/// Slice of a vector, Range, Transpose, and Add, Sub, Mul, Div, Equal, Where with numpy
/// broadcasting) on known inputs (null: an omitted optional input), as ONNX defines it; nullopt
/// when it is none of those, or its result would exceed kFoldLimit elements, or an index is
/// out of range.
std::optional<ConstValue> evaluate_constant(const std::string& kind, const std::map<std::string, AttrValue>& attributes,
                                            const std::vector<const ConstValue*>& inputs);

}  // namespace kpu::compiler
