// The portable target: the config kpu-compile tiles for when no --config is given. Its
// on-chip memories (L3, L2, L1 per compute tile) are those of the smallest shipped config
// (configs/minimal.json), so that every shipped config binds its programs as they are, without
// re-blocking (reblock.h); its fabric, compute tiles, bandwidths and clocks are t64's, so that
// the tile sides and the task grid suit a mid-size part and split well on both smaller and
// bigger ones. It is no part to simulate: kpu-sim takes a real config. docs/compiler.md,
// "Portable programs".
#pragma once

#include <vector>

#include "hardware/config.h"

namespace kpu::compiler {

/// The name a program compiled for the portable target records as its target config.
inline constexpr const char* kPortableTargetName = "portable";

/// The portable target (validated like any config), with kpu-compile's --set overrides.
hw::Config portable_target(const std::vector<hw::Override>& overrides = {});

}  // namespace kpu::compiler
