#include "compiler/portable_target.h"

namespace kpu::compiler {

namespace {

/// t64's fabric, tiles, DRAM, movers and clocks; minimal's L3, L2 and L1 (the smallest of
/// every shipped config: tests/compiler/reblock_test.cpp checks that each one holds them).
constexpr const char* kPortableTarget = R"({
  "name": "portable",
  "description": "Portable target: t64's fabric and 64 compute tiles with the on-chip memories of the smallest shipped config",
  "clocks": { "fabric_mhz": 1500, "sram_mhz": 1500, "dram_mhz": 3200 },
  "compute_tiles": 64,
  "fabric": { "rows": 16, "cols": 16, "element_types": ["float32", "bfloat16", "int8"], "energy_pj_per_mac": 0.8 },
  "dram": { "channels": 8, "capacity_mib": 4096, "bandwidth_gb_per_s": 64, "latency_cycles": 300,
            "ports": 1, "burst_bytes": 64, "interleave_bytes": 4096, "channel_select": "hashed", "energy_pj_per_byte": 15.0 },
  "l3": { "tiles": 64, "capacity_kib": 256, "bandwidth_gb_per_s": 96, "latency_cycles": 16,
          "ports": 2, "burst_bytes": 64, "energy_pj_per_byte": 1.5 },
  "l2": { "banks_per_tile": 4, "capacity_kib": 16, "bandwidth_gb_per_s": 48, "latency_cycles": 6,
          "ports": 1, "burst_bytes": 64, "energy_pj_per_byte": 0.8 },
  "l1": { "buffers_per_tile": 64, "capacity_kib": 1, "bandwidth_gb_per_s": 24, "latency_cycles": 1,
          "ports": 1, "burst_bytes": 64, "energy_pj_per_byte": 0.4 },
  "interconnect": { "bandwidth_gb_per_s": 96, "latency_cycles": 12 },
  "dma": { "engines": 16, "bandwidth_gb_per_s": 48, "queue_depth": 16 },
  "block_mover": { "per_tile": 2, "bandwidth_gb_per_s": 96, "queue_depth": 8 },
  "streamer": { "per_tile": 4, "bandwidth_gb_per_s": 48, "queue_depth": 8 },
  "vector": { "lanes": 16, "latency_cycles": 12, "energy_pj_per_op": 0.4, "energy_pj_per_sfu_op": 1.6,
              "sfu_cycles": { "exp": 4, "tanh": 4, "erf": 8, "sigmoid": 4, "rsqrt": 4, "reciprocal": 4 } },
  "static_power_w": 15.0
})";

}  // namespace

hw::Config portable_target(const std::vector<hw::Override>& overrides) {
    return hw::parse_config(kPortableTarget, "the portable target", overrides);
}

}  // namespace kpu::compiler
