// Reading the tools' text inputs (configs, graphs, .kpu programs) with bounds, so that a wrong
// file gets one line naming it instead of a hang or a crash: /dev/zero or a multi-gigabyte
// file as a config, JSON nested so deep that walking it would overflow the stack, a number
// no double holds. They return the problem as text; the caller prefixes the file name and
// throws its own error type (ConfigError, CompileError, ...), as hw::parse_document does.
#pragma once

#include <cstdint>
#include <string>

#include <nlohmann/json.hpp>

namespace kpu::hw {

/// No input the tools read comes near this (a .kpu of a 65536^3 matmul is 3 MB).
constexpr uint64_t kMaxInputBytes = 64ull << 20;
/// Deeper than any valid config, graph or program (they nest 5 levels at most).
constexpr int kMaxJsonDepth = 64;

/// The whole of `path` into `text`; false with `problem` ("cannot open <kind> file", "is a
/// directory", "is larger than 64 MiB (...)") otherwise.
bool read_input_file(const std::string& path, const std::string& kind, std::string& text, std::string& problem);

/// Parses `text`; false with `problem` ("malformed JSON: parse error at line 3, column 5:
/// ...", "malformed JSON: number overflow parsing '1e400'", "malformed JSON: nested deeper
/// than 64 levels at byte N", "fabric.rows: named twice in one object (...)") otherwise.
bool parse_json_text(const std::string& text, nlohmann::json& value, std::string& problem);

/// Which of the tools' file kinds `value` looks like: "config", "graph", "kpu" (a .kpu
/// program), "bound" (kpu-compile --bind's output), or "" for none of them. A loader given
/// the wrong kind says what it got instead of "format: missing required field".
std::string input_kind(const nlohmann::json& value);

/// "" when `value` is not of another kind than `expected`, else the one line to report
/// after the file name, e.g. "is a graph, not a .kpu program (compile it with kpu-compile)".
std::string wrong_kind(const nlohmann::json& value, const std::string& expected);

}  // namespace kpu::hw
