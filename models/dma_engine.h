// A chip-level DMA engine: moves tensors between DRAM and any compute tile's L3 (either
// direction) through the chip interconnect. Socket: `socket` (initiator, to kpu.noc).
// Time: dma.bandwidth per engine, pipelined bursts (Mover); the DRAM channels, the tile's
// network link and the L3 ports charge their own parts.
#pragma once

#include "models/mover.h"

namespace kpu::model {

class DmaEngine : public Mover {
public:
    DmaEngine(sc_core::sc_module_name name, const hw::Config& config, const hw::AddressMap& map,
              const sc_core::sc_time& quantum)
        : Mover(name, "DMA engine", config.dma, config, map, quantum) {}
};

}  // namespace kpu::model
