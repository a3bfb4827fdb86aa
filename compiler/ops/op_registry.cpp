// Every op family's registration line: adding an op kind is adding its file under
// compiler/ops/ and one line here (and the file to compiler/CMakeLists.txt).
#include "compiler/ops/op_schema.h"

namespace kpu::compiler {

void register_matmul(OpRegistry& registry);
void register_elementwise(OpRegistry& registry);
void register_reduce(OpRegistry& registry);
void register_normalization(OpRegistry& registry);
void register_layout(OpRegistry& registry);
void register_attention(OpRegistry& registry);
void register_window(OpRegistry& registry);
void register_conv(OpRegistry& registry);
void register_ffn(OpRegistry& registry);
void register_vector_chain(OpRegistry& registry);
void register_quantize(OpRegistry& registry);

const OpRegistry& op_registry() {
    static const OpRegistry registry = [] {
        OpRegistry r;
        register_matmul(r);
        register_elementwise(r);
        register_reduce(r);
        register_normalization(r);
        register_layout(r);
        register_attention(r);
        register_window(r);
        register_conv(r);
        register_ffn(r);
        register_vector_chain(r);
        register_quantize(r);
        return r;
    }();
    return registry;
}

}  // namespace kpu::compiler
