// The crossbar inside one compute tile (kpu.tile_t.switch): connects the tile's BlockMovers,
// Streamers (and later the fabric) to its L3 tile, L2 banks and L1 buffers, and sends every
// other address up to the chip interconnect. It charges no time of its own: the memories'
// latencies include the local wiring, and the tile's network link lives in Interconnect.
// A per-tile switch also keeps every multi-socket small (SystemC checks each new binding
// against all previous ones, so one flat switch with 70000 memories would bind in O(n^2)).
//
// Sockets (Router): target_socket <- tile movers, fabric, the interconnect's downlink;
// initiator_socket -> L3, L2 bank 0..B-1, the L1Fanout (all L1 buffers), then the uplink
// (in that order).
#pragma once

#include "models/router.h"

namespace kpu::model {

class TileSwitch : public Router {
public:
    TileSwitch(sc_core::sc_module_name name, const hw::Config& config, const hw::AddressMap& map, uint32_t tile)
        : Router(name, config, map, tile, 1) {}
};

}  // namespace kpu::model
