// The JSON graph importer (docs/graph-format.md) and its writer. Two input forms: the
// single-op form of the seeds ({"op": "matmul", "A": {...}, "B": {...}, "C": {...}}) and the
// multi-op form ({"tensors": [...], "ops": [...]}). The writer always emits the multi-op form
// with every shape, dtype and role explicit; that is also the "graph" section of a .kpu file.
#pragma once

#include <string>

#include <nlohmann/json.hpp>

#include "compiler/graph.h"

namespace kpu::compiler {

/// Parses either form and runs Graph::check(). `source` names the text in messages.
Graph parse_graph(const std::string& json_text, const std::string& source);

/// Reads a graph file; throws CompileError naming the file.
Graph load_graph(const std::string& path);

/// The multi-op form found at `path` (a dotted JSON path, "" for the top level), checked.
Graph graph_from_json(const nlohmann::json& value, const std::string& path, const std::string& source);

nlohmann::json graph_to_json(const Graph& graph);

/// Reads a whole input file (hw::read_input_file: bounded); throws CompileError
/// "<path>: cannot open <kind> file" and the like.
std::string read_text_file(const std::string& path, const std::string& kind);

}  // namespace kpu::compiler
