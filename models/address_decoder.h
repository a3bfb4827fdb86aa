// Address decoding for the interconnect and the tile switches: device address -> output
// port and local address, by hw::AddressMap::decode() (the same map the compiler's binder
// uses). A small cache of recent routes spares the decode for the next burst of the same
// DRAM interleave block or memory instance, because a mover sends dozens of consecutive
// bursts to each. Plain C++, no SystemC.
#pragma once

#include <array>
#include <cstdint>

#include "hardware/address_map.h"

namespace kpu::model {

/// Where a range of device addresses goes.
struct Route {
    uint64_t lo = 0, hi = 0;  ///< device addresses [lo, hi) this route covers (one block / instance); empty matches nothing
    uint64_t delta = 0;       ///< local address = device address - delta
    uint32_t port = 0;        ///< output port, or kUplink
};

class AddressDecoder {
public:
    static constexpr uint32_t kUplink = ~uint32_t(0);  ///< "not in this tile": up to the chip interconnect
    static constexpr uint32_t kChip = ~uint32_t(0);    ///< scope of the chip-level interconnect

    /// Chip scope (tile == kChip): ports are DRAM channel c -> c, compute tile t -> channels + t;
    /// addresses to a tile pass unchanged (the tile switch decodes them again).
    /// Tile scope: L3 -> 0, L2 bank b -> 1 + b, with local offsets; every L1 buffer -> 1 +
    /// banks (the tile's L1Fanout), with offsets from the tile's first buffer; anything
    /// else -> kUplink, unchanged.
    AddressDecoder(const hw::Config& config, const hw::AddressMap& map, uint32_t tile);

    /// False when AddressMap::decode refuses [addr, addr + len).
    bool route(uint64_t addr, uint64_t len, Route& out) {
        for (const Route& r : cache_)
            if (addr - r.lo < r.hi - r.lo && len <= r.hi - addr) {
                out = r;
                return true;
            }
        if (!decode(addr, len, out)) return false;
        cache_[next_++ % cache_.size()] = out;
        return true;
    }

    uint32_t port_count() const;
    uint32_t tile() const { return tile_; }
    const hw::AddressMap& map() const { return map_; }

private:
    bool decode(uint64_t addr, uint64_t len, Route& out) const;

    const hw::Config& config_;
    const hw::AddressMap& map_;
    uint32_t tile_;
    std::array<Route, 4> cache_{};
    uint32_t next_ = 0;
};

}  // namespace kpu::model
