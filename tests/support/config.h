// The shipped configs (configs/<name>.json) by name, for the tests of every layer.
#pragma once

#include <string>
#include <vector>

#include "hardware/config.h"

namespace kpu::test {

/// The path of configs/<name>.json in this source tree.
inline std::string config_path(const std::string& name) {
    return std::string(KPU_SOURCE_DIR) + "/configs/" + name + ".json";
}

/// configs/<name>.json with `overrides` applied, as kpu-sim --set applies them.
inline hw::Config config(const std::string& name, const std::vector<hw::Override>& overrides = {}) {
    return hw::load_config(config_path(name), overrides);
}

}  // namespace kpu::test
