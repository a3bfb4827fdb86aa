// The common part of the chip Interconnect and the per-tile TileSwitch: a TLM-2.0
// interconnect component that decodes device addresses (AddressDecoder, i.e.
// hw::AddressMap::decode), rewrites them to the target's local offsets, forwards, and
// restores them. An address the map refuses gets TLM_ADDRESS_ERROR_RESPONSE and a warning
// naming this module, the initiator, the address range and the reason.
//
// Sockets: `target_socket` (multi: movers, host, checkers, lower switches) and
// `initiator_socket` (multi: memories or switches, bound in the decoder's port order).
// Time: none by itself; subclasses add network timing in charge().
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <systemc>
#include <tlm>
#include <tlm_utils/multi_passthrough_initiator_socket.h>
#include <tlm_utils/multi_passthrough_target_socket.h>

#include "models/address_decoder.h"
#include "models/sim_time.h"

namespace kpu::model {

class Router : public sc_core::sc_module {
public:
    tlm_utils::multi_passthrough_target_socket<Router> target_socket;
    tlm_utils::multi_passthrough_initiator_socket<Router> initiator_socket;

    /// Binds an initiator socket (or a checker's, or a lower switch's) to target_socket.
    /// `origin_tile` says which compute tile it sits in (AddressDecoder::kChip for chip level).
    template <class Socket>
    void connect_initiator(Socket& initiator, uint32_t origin_tile = AddressDecoder::kChip) {
        initiator.bind(target_socket);
        origins_.push_back(origin_tile);
        initiator_names_.push_back(initiator.name());
    }

    uint64_t transactions() const { return transactions_; }
    uint64_t errors() const { return errors_; }
    const AddressDecoder& decoder() const { return decoder_; }

protected:
    Router(sc_core::sc_module_name name, const hw::Config& config, const hw::AddressMap& map, uint32_t tile,
           uint32_t extra_ports);

    /// Network time of one access from initiator `id` to output `port` (adds to delay).
    virtual void charge(int id, uint32_t port, tlm::tlm_generic_payload& trans, sc_core::sc_time& delay) {
        (void)id, (void)port, (void)trans, (void)delay;
    }
    /// The PortTimers charge() books for this hop, appended to a DMI request's TimingPath.
    virtual void add_stages(int id, uint32_t port, tlm::tlm_generic_payload& trans) {
        (void)id, (void)port, (void)trans;
    }
    uint32_t origin(int id) const { return origins_[id]; }
    const TimeBase& time() const { return time_; }

    /// Port index of the uplink (tile switches); kUplink never reaches the chip interconnect.
    uint32_t uplink_port() const { return decoder_.port_count(); }

private:
    void b_transport(int id, tlm::tlm_generic_payload& trans, sc_core::sc_time& delay);
    tlm::tlm_sync_enum nb_transport_fw(int id, tlm::tlm_generic_payload& trans, tlm::tlm_phase& phase,
                                       sc_core::sc_time& delay);
    bool get_direct_mem_ptr(int id, tlm::tlm_generic_payload& trans, tlm::tlm_dmi& dmi);
    unsigned int transport_dbg(int id, tlm::tlm_generic_payload& trans);
    tlm::tlm_sync_enum nb_transport_bw(int id, tlm::tlm_generic_payload& trans, tlm::tlm_phase& phase,
                                       sc_core::sc_time& delay);
    void invalidate_direct_mem_ptr(int id, sc_dt::uint64 start, sc_dt::uint64 end);
    void end_of_elaboration() override;

    /// Routes or reports; the output port index in initiator_socket.
    bool route(int id, const tlm::tlm_generic_payload& trans, Route& r, uint32_t& port, const char* what);

    AddressDecoder decoder_;
    uint32_t ports_expected_;
    TimeBase time_;
    std::vector<uint32_t> origins_;
    std::vector<std::string> initiator_names_;
    uint64_t transactions_ = 0, errors_ = 0;
};

}  // namespace kpu::model
