// A BlockMover of one compute tile: moves tiles between the tile's L3 and its L2 banks,
// as is (Identity) or transposed (Transform::Transpose). Socket: `socket` (initiator, to
// the tile switch). Time: block_mover.bandwidth per engine, pipelined bursts (Mover); the
// L3 and L2 ports charge their own parts.
#pragma once

#include "models/mover.h"

namespace kpu::model {

class BlockMover : public Mover {
public:
    BlockMover(sc_core::sc_module_name name, const hw::Config& config, const hw::AddressMap& map,
               const sc_core::sc_time& quantum)
        : Mover(name, "BlockMover", config.block_mover, config, map, quantum) {}
};

}  // namespace kpu::model
