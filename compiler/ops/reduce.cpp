#include "compiler/ops/op_schema.h"

namespace kpu::compiler {

void register_reduce(OpRegistry&) {}

}  // namespace kpu::compiler
