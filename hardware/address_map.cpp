#include "hardware/address_map.h"

#include <sstream>

namespace kpu::hw {

AddressMap::AddressMap(const Config& config)
    : config_(config), dram_size_(uint64_t(config.dram.count) * config.dram.capacity_bytes) {}

uint64_t AddressMap::l3_base(uint32_t tile) const { return kL3Base + uint64_t(tile) * config_.l3.capacity_bytes; }

uint64_t AddressMap::l2_base(uint32_t tile, uint32_t bank) const {
    return kL2Base + (uint64_t(tile) * config_.l2.count + bank) * config_.l2.capacity_bytes;
}

uint64_t AddressMap::l1_base(uint32_t tile, uint32_t buffer) const {
    return kL1Base + (uint64_t(tile) * config_.l1.count + buffer) * config_.l1.capacity_bytes;
}

uint32_t AddressMap::dram_channel(uint64_t block) const {
    const uint64_t channels = config_.dram.count;
    uint64_t rotation = 0;
    if (config_.dram.channel_select == ChannelSelect::Hashed && channels > 1)
        for (uint64_t row = block / channels; row; row /= channels) rotation += row % channels;
    return uint32_t((block + rotation) % channels);
}

uint64_t AddressMap::dram_address(uint32_t channel, uint64_t offset) const {
    const uint64_t block = config_.dram.interleave_bytes, channels = config_.dram.count;
    const uint64_t row = offset / block;
    // The block of this row that dram_channel() sends to `channel`: undo the row's rotation
    // (the channel of its first block).
    const uint64_t rotation = dram_channel(row * channels);
    const uint64_t column = (channel + channels - rotation) % channels;
    return (row * channels + column) * block + offset % block;
}

bool AddressMap::decode(uint64_t addr, uint64_t length, Location& where) const {
    if (length == 0 || addr + length < addr) return false;
    if (addr < kL3Base) {
        if (addr + length > dram_size_) return false;
        const uint64_t block = config_.dram.interleave_bytes;
        if (addr / block != (addr + length - 1) / block) return false;
        const uint64_t block_index = addr / block;
        where = {Level::Dram, 0, dram_channel(block_index),
                 (block_index / config_.dram.count) * block + addr % block, config_.dram.capacity_bytes};
        return true;
    }
    struct Region {
        Level level;
        uint64_t base, capacity, per_tile, instances;
    };
    const Region regions[] = {
        {Level::L3, kL3Base, config_.l3.capacity_bytes, 1, config_.l3.count},
        {Level::L2, kL2Base, config_.l2.capacity_bytes, config_.l2.count, uint64_t(config_.compute_tiles) * config_.l2.count},
        {Level::L1, kL1Base, config_.l1.capacity_bytes, config_.l1.count, uint64_t(config_.compute_tiles) * config_.l1.count},
    };
    for (const Region& r : regions) {
        if (addr < r.base || addr >= r.base + kRegionSize) continue;
        const uint64_t rel = addr - r.base;
        const uint64_t instance = rel / r.capacity;
        if (instance >= r.instances) return false;
        const uint64_t offset = rel % r.capacity;
        if (offset + length > r.capacity) return false;
        where = {r.level, uint32_t(instance / r.per_tile), uint32_t(instance % r.per_tile), offset, r.capacity};
        return true;
    }
    return false;
}

std::string AddressMap::explain(uint64_t addr, uint64_t length) const {
    std::ostringstream out;
    out << std::hex << "[0x" << addr << ", 0x" << addr + length << ")" << std::dec << " (" << length << " bytes) ";
    Location where;
    if (length == 0) {
        out << "is empty";
    } else if (addr < kL3Base) {
        if (addr + length > dram_size_)
            out << "is outside DRAM (" << dram_size_ << " bytes)";
        else
            out << "crosses a DRAM interleave block of " << config_.dram.interleave_bytes << " bytes";
    } else if (decode(addr, 1, where)) {
        out << "crosses the end of " << to_string(where.level) << " tile " << where.tile << " instance "
            << where.index << " (" << where.capacity << " bytes)";
    } else {
        out << "is not mapped";
    }
    return out.str();
}

}  // namespace kpu::hw
