// One compute tile of the KPU (kpu.tile_t): its L3 tile, L2 banks, L1 buffers, BlockMovers,
// Streamers, its SystolicFabric, its VectorEngine and the switch that connects them. Counts and
// sizes come from the config. The tile charges no time itself; its memories, movers and the
// chip interconnect's link do.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include <systemc>

#include "hardware/address_map.h"
#include "hardware/config.h"
#include "models/block_mover.h"
#include "models/l1_buffer.h"
#include "models/l1_fanout.h"
#include "models/l2_bank.h"
#include "models/l3_tile.h"
#include "models/streamer.h"
#include "models/systolic_fabric.h"
#include "models/tile_switch.h"
#include "models/vector_engine.h"
#include "platform/platform_options.h"
#include "platform/wiring.h"

namespace kpu::platform {

class ComputeTile : public sc_core::sc_module {
public:
    /// The tile's memories take their pages from `pages` (the platform's; it outlives them).
    ComputeTile(sc_core::sc_module_name name, const hw::Config& config, const hw::AddressMap& map, uint32_t index,
                const PlatformOptions& options, model::PageArena& pages);
    ~ComputeTile() override;

    uint32_t index() const { return index_; }
    model::L3Tile& l3() { return *l3_; }
    model::L2Bank& l2(uint32_t bank);
    model::L1Buffer& l1(uint32_t buffer);
    model::BlockMover& block_mover(uint32_t unit);
    model::Streamer& streamer(uint32_t unit);
    model::TileSwitch& tile_switch() { return *switch_; }
    model::SystolicFabric& fabric() { return *fabric_; }
    model::VectorEngine& vector() { return *vector_; }
    uint32_t l2_count() const { return uint32_t(l2_.size()); }
    uint32_t l1_count() const { return uint32_t(l1_.size()); }
    uint32_t block_mover_count() const { return uint32_t(block_movers_.size()); }
    uint32_t streamer_count() const { return uint32_t(streamers_.size()); }
    const Wiring& wiring() const { return wiring_; }

    /// The fabric's socket (or any other initiator in this tile) joins the tile switch here.
    template <class Socket>
    void connect_initiator(Socket& socket) {
        switch_->connect_initiator(socket, index_);
    }

private:
    uint32_t index_;
    Wiring wiring_;
    std::unique_ptr<model::TileSwitch> switch_;
    std::unique_ptr<model::L3Tile> l3_;
    std::vector<std::unique_ptr<model::L2Bank>> l2_;
    std::vector<std::unique_ptr<model::L1Buffer>> l1_;
    std::unique_ptr<model::L1Fanout> l1_fanout_;  ///< the switch's one port onto l1_
    std::vector<std::unique_ptr<model::BlockMover>> block_movers_;
    std::vector<std::unique_ptr<model::Streamer>> streamers_;
    std::unique_ptr<model::SystolicFabric> fabric_;
    std::unique_ptr<model::VectorEngine> vector_;
};

/// Destroys the last-built module first. SystemC 2.3's port and export registries look
/// for the object being removed from their end, so this keeps each removal O(1); see
/// ~KpuPlatform for the module registry, which looks from its front.
template <class T>
void destroy_backwards(std::vector<std::unique_ptr<T>>& modules) {
    while (!modules.empty()) modules.pop_back();
}

/// Index check for the platform's accessors: reports (SC_REPORT_ERROR, which throws) with
/// the module, the kind and the valid range instead of reading past a vector.
void check_index(const sc_core::sc_object& owner, const char* what, uint32_t index, size_t count);

}  // namespace kpu::platform
