#include "models/interconnect.h"

#include "models/contention.h"

namespace kpu::model {

Interconnect::Interconnect(sc_core::sc_module_name name, const hw::Config& config, const hw::AddressMap& map)
    : Router(name, config, map, AddressDecoder::kChip, 0), channels_(config.dram.count) {
    links_.reserve(config.compute_tiles);
    for (uint32_t t = 0; t < config.compute_tiles; ++t)
        links_.emplace_back(1, config.interconnect.bandwidth_bytes_per_s, config.clocks.sram_hz,
                            config.interconnect.latency_cycles);
}

void Interconnect::charge(int id, uint32_t port, tlm::tlm_generic_payload& trans, sc_core::sc_time& delay) {
    const uint32_t from = origin(id);
    const uint32_t to = port >= channels_ ? port - channels_ : AddressDecoder::kChip;
    if (from == AddressDecoder::kChip && to == AddressDecoder::kChip) return;
    const Fs now = time().now();
    Fs at = now + time().to_fs(delay);
    const uint64_t bytes = trans.get_data_length();
    for (uint32_t tile : {from, to}) {
        if (tile == AddressDecoder::kChip) continue;
        const PortTimer::Booking b = links_[tile].book(at, bytes, &trans);
        ContentionExtension::mark(trans, b.contended);
        at = b.done;
    }
    delay = time().until(at, now);
}

}  // namespace kpu::model
