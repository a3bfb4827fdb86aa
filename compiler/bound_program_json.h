// The JSON rendering of a bound program, for inspection (kpu-compile --bind -o): the totals,
// the tensors' DRAM placement and one line per op with its engine, dependencies and command.
#pragma once

#include <string>

#include "compiler/bound_program.h"

namespace kpu::compiler {

std::string write_bound_program(const BoundProgram& bound);

}  // namespace kpu::compiler
