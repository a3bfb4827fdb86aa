// ONNX models in (docs/onnx.md): a .onnx file (opsets 11 to 17, Debian's libonnx: its
// protobuf model, checker and shape inference) becomes a Graph of the same ops. Initializers
// become constants: small integer ones (shapes, axes) inline values the compiler reads, the
// others weights whose values travel with the program (kpu-compile writes them next to the
// .kpu). The shape computations torch.onnx.export emits (Shape, Gather, Concat, Unsqueeze,
// Constant, ...) are evaluated at import; erf- and tanh-GELU and a LayerNormalization spelled
// out below opset 17 are recognised and become one op. Every op that does not import is
// listed in one error with its node name.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "compiler/graph.h"

namespace kpu::compiler {

struct ImportedModel {
    Graph graph;                              ///< checked
    Weights weights;                          ///< by (graph) tensor name: every constant without an inline value
    /// ONNX names that are no file names and the graph's names for them ("/fc1/MatMul_output_0"
    /// -> "fc1.MatMul_output_0"), in the model's order.
    std::vector<std::pair<std::string, std::string>> renamed;
    int64_t opset = 0;                        ///< of the default domain
};

/// Reads and imports `path`; throws CompileError naming the file and what is wrong (not an
/// ONNX model, the checker's finding, an opset outside 11..17, a dimension that is not a
/// number, every unsupported op at once: "Unsupported operators: GroupNorm (n1), ...").
ImportedModel import_onnx(const std::string& path);

/// The same from the serialized bytes of a ModelProto; `source` names it in messages.
ImportedModel import_onnx_bytes(const std::string& bytes, const std::string& source);

/// Whether `path` names an ONNX model (by its extension, .onnx).
bool is_onnx_path(const std::string& path);

}  // namespace kpu::compiler
