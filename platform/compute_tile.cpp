#include "platform/compute_tile.h"

#include <sstream>
#include <string>

namespace kpu::platform {

void check_index(const sc_core::sc_object& owner, const char* what, uint32_t index, size_t count) {
    if (index < count) return;
    std::ostringstream msg;
    msg << owner.name() << ": no " << what << " " << index << " (this config has " << count << ")";
    SC_REPORT_ERROR("kpu/platform", msg.str().c_str());
}

ComputeTile::ComputeTile(sc_core::sc_module_name name, const hw::Config& config, const hw::AddressMap& map,
                         uint32_t index, const PlatformOptions& options, model::PageArena& pages)
    : sc_core::sc_module(name), index_(index), wiring_(options.check_protocol) {
    switch_ = std::make_unique<model::TileSwitch>("switch", config, map, index);
    l3_ = std::make_unique<model::L3Tile>("l3", config, map, index, &pages);
    wiring_.target(*switch_, l3_->socket, "l3");
    l2_.reserve(config.l2.count);
    for (uint32_t b = 0; b < config.l2.count; ++b) {
        const std::string n = "l2_" + std::to_string(b);
        l2_.push_back(std::make_unique<model::L2Bank>(n.c_str(), config, map, index, b, &pages));
        wiring_.target(*switch_, l2_.back()->socket, n);
    }
    l1_.reserve(config.l1.count);
    std::vector<model::Memory*> buffers;
    for (uint32_t l = 0; l < config.l1.count; ++l) {
        const std::string n = "l1_" + std::to_string(l);
        l1_.push_back(std::make_unique<model::L1Buffer>(n.c_str(), config, map, index, l, &pages));
        buffers.push_back(l1_.back().get());
    }
    l1_fanout_ = std::make_unique<model::L1Fanout>("l1_fanout", std::move(buffers), config.l1.capacity_bytes);
    wiring_.target(*switch_, l1_fanout_->socket, "l1_fanout");
    for (uint32_t u = 0; u < config.block_mover.count; ++u) {
        const std::string n = "bm_" + std::to_string(u);
        block_movers_.push_back(std::make_unique<model::BlockMover>(n.c_str(), config, map, options.quantum));
        block_movers_.back()->set_dmi(options.mover_dmi);
        block_movers_.back()->set_train_bytes(options.train_bytes);
        wiring_.initiator(block_movers_.back()->socket, *switch_, index, n);
    }
    for (uint32_t u = 0; u < config.streamer.count; ++u) {
        const std::string n = "streamer_" + std::to_string(u);
        streamers_.push_back(std::make_unique<model::Streamer>(n.c_str(), config, map, options.quantum));
        streamers_.back()->set_dmi(options.mover_dmi);
        streamers_.back()->set_train_bytes(options.train_bytes);
        wiring_.initiator(streamers_.back()->socket, *switch_, index, n);
    }
    fabric_ = std::make_unique<model::SystolicFabric>("fabric", config);
    wiring_.initiator(fabric_->l1_socket, *switch_, index, "fabric");
    vector_ = std::make_unique<model::VectorEngine>("vector", config);
    wiring_.initiator(vector_->socket, *switch_, index, "vector");
}

ComputeTile::~ComputeTile() {
    vector_.reset();
    fabric_.reset();
    destroy_backwards(streamers_);
    destroy_backwards(block_movers_);
    l1_fanout_.reset();
    destroy_backwards(l1_);
    destroy_backwards(l2_);
}

model::L2Bank& ComputeTile::l2(uint32_t bank) {
    check_index(*this, "L2 bank", bank, l2_.size());
    return *l2_[bank];
}

model::L1Buffer& ComputeTile::l1(uint32_t buffer) {
    check_index(*this, "L1 buffer", buffer, l1_.size());
    return *l1_[buffer];
}

model::BlockMover& ComputeTile::block_mover(uint32_t unit) {
    check_index(*this, "BlockMover", unit, block_movers_.size());
    return *block_movers_[unit];
}

model::Streamer& ComputeTile::streamer(uint32_t unit) {
    check_index(*this, "Streamer", unit, streamers_.size());
    return *streamers_[unit];
}

}  // namespace kpu::platform
