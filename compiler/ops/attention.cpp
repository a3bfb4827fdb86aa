#include "compiler/ops/op_schema.h"

namespace kpu::compiler {

void register_attention(OpRegistry&) {}

}  // namespace kpu::compiler
