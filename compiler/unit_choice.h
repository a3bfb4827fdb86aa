// Which unit runs a convolution that two can run (docs/compiler.md, "Depthwise convolution"):
// a Conv whose groups each have one input and one output channel (group = C_in = C_out, the
// depthwise layers of MobileNet) runs on the fabric as conv_nhwc (a one-column matmul per
// channel, between its layout Transposes) or on the vector engine as depthwise_conv (a
// weighted window over each NCHW plane). Both are estimated on the config by formula, each
// alone (docs/compiler.md gives both); the cheaper one runs.
#pragma once

#include <string>
#include <vector>

#include "compiler/graph.h"
#include "hardware/enum_names.h"
#include "hardware/config.h"

namespace kpu::compiler {

/// Where depthwise Convs run: by the estimates, or all on one unit (kpu-compile --depthwise-on).
enum class DepthwiseUnit : uint8_t { Auto, Fabric, Vector };
inline constexpr EnumName<DepthwiseUnit> kDepthwiseUnitNames[] = {
    {DepthwiseUnit::Auto, "auto"}, {DepthwiseUnit::Fabric, "fabric"}, {DepthwiseUnit::Vector, "vector"}};
inline bool parse_depthwise_unit(const std::string& name, DepthwiseUnit& out) {
    return hw::value_in(kDepthwiseUnitNames, name, out);
}

/// One depthwise Conv's estimates and where it runs.
struct UnitChoice {
    std::string op;             ///< the Conv's name
    double fabric_cycles = 0;   ///< max(fabric passes over the tiles, DRAM time with its layout Transposes)
    double vector_cycles = 0;   ///< max(depthwise_conv_vector_cycles, DRAM time)
    bool vector = false;        ///< runs on the vector engine
};

/// The checked graph with each depthwise Conv that is cheaper on the vector engine (or every
/// one, with `unit` Vector; none with Fabric) made a depthwise_conv (same inputs, outputs and
/// attributes); `choices` (optional) gets every depthwise Conv's estimates, in graph order.
Graph choose_units(const Graph& graph, const hw::Config& config, std::vector<UnitChoice>* choices = nullptr,
                   DepthwiseUnit unit = DepthwiseUnit::Auto);

}  // namespace kpu::compiler
