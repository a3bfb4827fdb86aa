// The KPU's device address map, derived from a config. Shared by the compiler's binder (which
// places buffers) and the platform (whose interconnect decodes addresses), so both agree by
// construction. No SystemC.
//
//   [0, dram_total)                         DRAM, interleaved across channels
//   kL3Base + t * l3.capacity               L3 tile t
//   kL2Base + (t * banks + b) * l2.capacity L2 bank b of compute tile t
//   kL1Base + (t * buffers + l) * l1.capacity  L1 buffer l of compute tile t
//
// Instances of a level are packed, so the banks (buffers) of one compute tile form one
// contiguous range: a tile of data may span consecutive L1 buffers.
#pragma once

#include <cstdint>
#include <string>

#include "hardware/config.h"
#include "hardware/enum_names.h"

namespace kpu::hw {

enum class Level { Dram, L3, L2, L1 };
/// As messages spell it.
inline constexpr EnumName<Level> kLevelNames[] = {
    {Level::Dram, "DRAM"}, {Level::L3, "L3"}, {Level::L2, "L2"}, {Level::L1, "L1"}};
inline const char* to_string(Level level) { return name_in(kLevelNames, level); }
inline bool parse_level(const std::string& name, Level& out) { return value_in(kLevelNames, name, out); }

constexpr uint64_t kL3Base = 1ull << 40;
constexpr uint64_t kL2Base = 2ull << 40;
constexpr uint64_t kL1Base = 3ull << 40;
constexpr uint64_t kRegionSize = 1ull << 40;  ///< each level's window

/// Where an address lands.
struct Location {
    Level level = Level::Dram;
    uint32_t tile = 0;      ///< compute tile (L3/L2/L1); 0 for DRAM
    uint32_t index = 0;     ///< DRAM channel, L2 bank or L1 buffer within the tile; 0 for L3
    uint64_t offset = 0;    ///< byte offset inside that instance (DRAM: inside the channel)
    uint64_t capacity = 0;  ///< bytes in that instance
};

class AddressMap {
public:
    explicit AddressMap(const Config& config);

    uint64_t dram_size() const { return dram_size_; }
    uint64_t l3_base(uint32_t tile) const;
    uint64_t l2_base(uint32_t tile, uint32_t bank) const;
    uint64_t l1_base(uint32_t tile, uint32_t buffer) const;

    /// Decodes [addr, addr+length); false if the range is unmapped or crosses an instance
    /// boundary (DRAM: the range must stay inside one interleave block).
    bool decode(uint64_t addr, uint64_t length, Location& where) const;

    /// DRAM channel of interleave block `block` (a device address / dram.interleave_bytes):
    /// `block mod channels`, rotated by the base-`channels` digit sum of `block / channels`
    /// when dram.channel_select is hashed. Either way each run of `channels` consecutive
    /// blocks covers every channel once.
    uint32_t dram_channel(uint64_t block) const;

    /// Device address of byte `offset` of DRAM channel `channel`: the inverse of decode().
    uint64_t dram_address(uint32_t channel, uint64_t offset) const;

    /// One-line description of why decode() refused, for error reports.
    std::string explain(uint64_t addr, uint64_t length) const;

private:
    const Config& config_;
    uint64_t dram_size_;
};

}  // namespace kpu::hw
