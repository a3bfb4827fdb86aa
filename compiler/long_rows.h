// Rows longer than a compute tile holds (docs/compiler.md, "Long rows"). A vector op works on
// whole rows of its input's last axis; where one row does not fit L2 and L3 with its double
// buffers, an elementwise op runs on a view with shorter rows (its result is the same), and a
// reduction runs in two passes: over chunks of the row, then over the chunks' results.
#pragma once

#include "compiler/graph.h"
#include "hardware/config.h"

namespace kpu::compiler {

/// The checked, expanded graph with every elementwise op and reduction whose rows do not fit
/// `config` rewritten onto rows of n / c elements, c the smallest divisor of the row length n
/// for which they fit (none: the op is left as it is, and the tiler names it).
Graph split_long_rows(const Graph& graph, const hw::Config& config);

}  // namespace kpu::compiler
