// A TLM-2.0 base-protocol checker to put between any initiator and target socket in tests
// (and in the platform with PlatformOptions::check_protocol). Our own implementation of the
// rules the public Doulos tlm2_base_protocol_checker enforces (LRM IEEE 1666-2011 clause
// numbers in each message), without its global state, so several platforms can be checked
// in one process. It charges no time and changes nothing; every violation is kept
// (violations()) and reported as a warning of type kpu/protocol.
//
// Sockets: target_socket <- initiator; initiator_socket -> target.
#pragma once

#include <cstdint>
#include <string>
#include <unordered_set>
#include <vector>

#include <systemc>
#include <tlm>

namespace kpu::model {

class ProtocolChecker : public sc_core::sc_module,
                        public tlm::tlm_fw_transport_if<>,
                        public tlm::tlm_bw_transport_if<> {
public:
    tlm::tlm_target_socket<> target_socket;
    tlm::tlm_initiator_socket<> initiator_socket;

    explicit ProtocolChecker(sc_core::sc_module_name name);

    const std::vector<std::string>& violations() const { return violations_; }
    uint64_t checked() const { return checked_; }  ///< transactions seen (all interfaces)

    void b_transport(tlm::tlm_generic_payload& trans, sc_core::sc_time& delay) override;
    tlm::tlm_sync_enum nb_transport_fw(tlm::tlm_generic_payload& trans, tlm::tlm_phase& phase,
                                       sc_core::sc_time& delay) override;
    bool get_direct_mem_ptr(tlm::tlm_generic_payload& trans, tlm::tlm_dmi& dmi) override;
    unsigned int transport_dbg(tlm::tlm_generic_payload& trans) override;
    tlm::tlm_sync_enum nb_transport_bw(tlm::tlm_generic_payload& trans, tlm::tlm_phase& phase,
                                       sc_core::sc_time& delay) override;
    void invalidate_direct_mem_ptr(sc_dt::uint64 start, sc_dt::uint64 end) override;

private:
    /// The attributes only the initiator may set, taken before the call and compared after.
    struct Snapshot {
        tlm::tlm_command command;
        unsigned char* data;
        unsigned int length;
        unsigned char* byte_enable;
        unsigned int byte_enable_length;
        unsigned int streaming_width;
        std::vector<unsigned char> write_data;
    };

    void violation(const tlm::tlm_generic_payload& trans, const char* clause, const std::string& what);
    void check_initial_state(const tlm::tlm_generic_payload& trans, const char* where);
    Snapshot snapshot(const tlm::tlm_generic_payload& trans) const;
    void check_not_modified(const tlm::tlm_generic_payload& trans, const Snapshot& before, const char* where);

    std::vector<std::string> violations_;
    std::unordered_set<const tlm::tlm_generic_payload*> in_flight_;  ///< payloads inside b_transport
    uint64_t checked_ = 0;
};

}  // namespace kpu::model
