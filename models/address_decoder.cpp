#include "models/address_decoder.h"

namespace kpu::model {

AddressDecoder::AddressDecoder(const hw::Config& config, const hw::AddressMap& map, uint32_t tile)
    : config_(config), map_(map), tile_(tile) {}

uint32_t AddressDecoder::port_count() const {
    if (tile_ == kChip) return config_.dram.count + config_.compute_tiles;
    return 1 + config_.l2.count + 1;
}

bool AddressDecoder::decode(uint64_t addr, uint64_t len, Route& out) const {
    hw::Location where;
    if (!map_.decode(addr, len, where)) return false;
    if (where.level == hw::Level::Dram) {
        const uint64_t block = config_.dram.interleave_bytes;
        out.lo = addr - addr % block;
        out.hi = out.lo + block;
        out.delta = tile_ == kChip ? addr - where.offset : 0;
        out.port = tile_ == kChip ? where.index : kUplink;
        return true;
    }
    out.lo = addr - where.offset;
    out.hi = out.lo + where.capacity;
    if (tile_ == kChip) {
        out.delta = 0;
        out.port = config_.dram.count + where.tile;
    } else if (where.tile != tile_) {
        out.delta = 0;
        out.port = kUplink;
    } else if (where.level == hw::Level::L1) {
        out.delta = map_.l1_base(tile_, 0);  // the fanout's offsets: from the tile's first buffer
        out.port = 1 + config_.l2.count;
    } else {
        out.delta = out.lo;
        out.port = where.level == hw::Level::L3 ? 0 : 1 + where.index;
    }
    return true;
}

}  // namespace kpu::model
