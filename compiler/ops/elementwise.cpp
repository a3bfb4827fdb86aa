#include "compiler/ops/op_schema.h"

namespace kpu::compiler {

void register_elementwise(OpRegistry&) {}

}  // namespace kpu::compiler
