#include "models/interconnect.h"

#include "models/contention.h"
#include "models/timing_path.h"

namespace kpu::model {

Interconnect::Interconnect(sc_core::sc_module_name name, const hw::Config& config, const hw::AddressMap& map)
    : Router(name, config, map, AddressDecoder::kChip, 0), channels_(config.dram.count) {
    links_.reserve(config.compute_tiles);
    for (uint32_t t = 0; t < config.compute_tiles; ++t)
        links_.emplace_back(1, config.interconnect.bandwidth_bytes_per_s, config.clocks.sram_hz,
                            config.interconnect.latency_cycles);
}

std::array<uint32_t, 2> Interconnect::links_crossed(int id, uint32_t port) const {
    return {origin(id), port >= channels_ ? port - channels_ : AddressDecoder::kChip};
}

void Interconnect::charge(int id, uint32_t port, tlm::tlm_generic_payload& trans, sc_core::sc_time& delay) {
    const auto links = links_crossed(id, port);
    if (links[0] == AddressDecoder::kChip && links[1] == AddressDecoder::kChip) return;
    const Fs now = time().now();
    Fs at = now + time().to_fs(delay);
    for (uint32_t tile : links) {
        if (tile == AddressDecoder::kChip) continue;
        const PortTimer::Booking b = links_[tile].book(at, trans.get_data_length(), &trans, trans.is_write());
        ContentionExtension::mark(trans, b.contended);
        at = time().ceil(b.done);  // every stage hands on at a kernel tick, as a b_transport would
    }
    delay = time().until(at, now);
}

void Interconnect::add_stages(int id, uint32_t port, tlm::tlm_generic_payload& trans) {
    for (uint32_t tile : links_crossed(id, port))
        if (tile != AddressDecoder::kChip) TimingPath::append(trans, links_[tile]);
}

}  // namespace kpu::model
