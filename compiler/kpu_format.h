// The .kpu object file (docs/kpu-format.md): versioned JSON holding a DFX Program. Written and
// read back losslessly; the reader validates everything and throws CompileError with one line
// "<source>: <json.path>: <problem>".
#pragma once

#include <string>

#include "compiler/dfx.h"

namespace kpu::compiler {

std::string write_kpu(const Program& program);
Program read_kpu(const std::string& text, const std::string& source);

void write_kpu_file(const Program& program, const std::string& path);
Program read_kpu_file(const std::string& path);

}  // namespace kpu::compiler
