// A Streamer of one compute tile: feeds rows or columns (a Transpose descriptor) from L2
// banks into the L1 buffers beside the fabric, and drains results from L1 back to L2.
// Socket: `socket` (initiator, to the tile switch). Time: streamer.bandwidth per engine,
// pipelined bursts (Mover); the L2 and L1 ports charge their own parts.
#pragma once

#include "models/mover.h"

namespace kpu::model {

class Streamer : public Mover {
public:
    Streamer(sc_core::sc_module_name name, const hw::Config& config, const hw::AddressMap& map,
             const sc_core::sc_time& quantum)
        : Mover(name, "Streamer", config.streamer, config, map, quantum) {}
};

}  // namespace kpu::model
