#include "compiler/ops/op_schema.h"

namespace kpu::compiler {

void register_normalization(OpRegistry&) {}

}  // namespace kpu::compiler
