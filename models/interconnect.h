// The chip-level on-chip network (kpu.noc): connects DMA engines, the host port and the
// compute tiles' switches to the DRAM channels and to every tile. Each compute tile has one
// link into it with interconnect.bandwidth and interconnect.latency (SRAM clock); that link
// is the only time this module charges: an access crossing into or out of tile t books link
// t as a PortTimer stage (tile-to-tile traffic books both tiles' links, DRAM traffic none).
//
// Sockets (Router): target_socket <- DMA engines, host, tile switches' uplinks;
// initiator_socket -> DRAM channel 0..C-1, then tile switch 0..T-1 (in that order).
#pragma once

#include <array>
#include <vector>

#include "models/port_timer.h"
#include "models/router.h"

namespace kpu::model {

class Interconnect : public Router {
public:
    Interconnect(sc_core::sc_module_name name, const hw::Config& config, const hw::AddressMap& map);

    const PortTimer& link(uint32_t tile) const { return links_.at(tile); }

private:
    void charge(int id, uint32_t port, tlm::tlm_generic_payload& trans, sc_core::sc_time& delay) override;
    void add_stages(int id, uint32_t port, tlm::tlm_generic_payload& trans) override;
    /// The tile links an access from initiator `id` to `port` crosses, in order (kChip: none).
    std::array<uint32_t, 2> links_crossed(int id, uint32_t port) const;

    uint32_t channels_;
    std::vector<PortTimer> links_;  ///< per compute tile
};

}  // namespace kpu::model
