#include "compiler/ops/op_schema.h"

namespace kpu::compiler {

void register_layout(OpRegistry&) {}

}  // namespace kpu::compiler
