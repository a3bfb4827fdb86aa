// The KPU top module: builds the module tree of one config, named like the hardware
// (kpu.dram_0, kpu.dma_3, kpu.noc, kpu.tile_3.l2_5, ...). A host drives it like a real
// device: through `host_socket` (registers + DRAM window, see host_interface.h) and `irq`.
// On START it reads the .kpu image from device DRAM, binds it to its config and lets the
// sequencer play it into the engines. Tests also get handles: the movers' command
// interfaces, an untimed backdoor to device memory (the memories' TLM debug transport) and
// direct L1 pointers. No global state: several platforms can share one simulation.
//
//   KpuPlatform
//    |- host            HostInterface (host_socket, irq)
//    |- sequencer       Sequencer
//    |- dram_c          DramChannel, c < dram.channels
//    |- dma_d           DmaEngine, d < dma.engines      (initiators of noc)
//    |- noc             Interconnect: DRAM channels, tile links
//    |- tile_t          ComputeTile, t < compute_tiles
//        |- switch, l3, l2_b, l1_l, bm_u, streamer_u, fabric, vector
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include <systemc>
#include <tlm>

#include "hardware/address_map.h"
#include "hardware/config.h"
#include "models/dma_engine.h"
#include "models/dram_channel.h"
#include "compiler/bound_program.h"
#include "models/interconnect.h"
#include "models/sequencer.h"
#include "platform/host_interface.h"
#include "platform/compute_tile.h"
#include "platform/platform_options.h"
#include "platform/wiring.h"

namespace kpu::platform {

/// How many SC_MODULEs of each kind a module tree holds (what kpu-sim --elaborate-only
/// prints). Counted by walking the tree, so a new kind of module cannot be left out: a kind
/// is the module's C++ class in snake_case (DramChannel -> "dram_channel", L2Bank ->
/// "l2_bank"), in the order a breadth-first walk first meets it.
struct ModuleCounts {
    std::vector<std::pair<std::string, uint64_t>> kinds;
    uint64_t of(const std::string& kind) const;  ///< 0 for a kind the tree does not hold
    uint64_t total() const;
};

/// The modules of `root`'s tree, `root` included.
ModuleCounts count_modules(const sc_core::sc_object& root);
/// The modules of every top-level object of the simulation.
ModuleCounts count_modules();

/// One line per kind, "  l2_bank           4096", and the total, for the CLI.
std::string format_counts(const ModuleCounts& counts);

class KpuPlatform : public sc_core::sc_module {
public:
    HostSocket host_socket;  ///< registers and DRAM window (host_interface.h); may stay unbound
    IrqPort irq;             ///< high when a program ended, until IRQ_ACK; may stay unbound

    KpuPlatform(sc_core::sc_module_name name, const hw::Config& config, const PlatformOptions& options = {});
    ~KpuPlatform() override;

    /// As given, with the quantum raised where the config needs more (docs/models.md).
    const PlatformOptions& options() const { return options_; }

    // The last program run through the host interface.
    model::Sequencer& sequencer() { return *sequencer_; }
    const compiler::BoundProgram& program() const { return program_; }  ///< as bound at START
    sc_core::sc_time started_at() const { return started_at_; }        ///< START
    sc_core::sc_time finished_at() const { return finished_at_; }      ///< irq raised
    const std::string& host_error_message() const { return host_->error_message(); }
    /// When the simulation ran out of events with a program unfinished: what is stuck.
    std::string stuck_report() const;

    const hw::Config& config() const { return config_; }
    const hw::AddressMap& address_map() const { return map_; }
    ModuleCounts counts() const;  ///< this platform's tree, itself included

    // Engines, as the bound program names them (BoundOp::unit, BoundOp::tile).
    model::DmaEngine& dma(uint32_t unit);
    model::BlockMover& block_mover(uint32_t tile, uint32_t unit);
    model::Streamer& streamer(uint32_t tile, uint32_t unit);

    ComputeTile& tile(uint32_t index);
    model::DramChannel& dram_channel(uint32_t channel);
    model::Interconnect& interconnect() { return *noc_; }

    /// Untimed copies to / from device memory by the memories' TLM debug transport, after
    /// the bytes of every transfer handed to the movers' helper are in place (any range; split
    /// at DRAM interleave blocks and memory instances). False, with a report naming the
    /// address, when part of the range is not mapped; the bytes before it were copied.
    bool write(uint64_t addr, const void* data, size_t len);
    bool read(uint64_t addr, void* data, size_t len);

    /// Host pointer to [addr, addr + len) inside one L1 buffer, valid for the platform's
    /// lifetime; allocates the buffer's page on first use. nullptr, with a report, when the
    /// range is not inside a single L1 buffer. What the SystolicFabric reads and writes.
    uint8_t* l1_pointer(uint64_t addr, size_t len);

    /// An initiator at chip level (the host interface) joins the interconnect here.
    template <class Socket>
    void connect_initiator(Socket& socket) {
        noc_->connect_initiator(socket);
    }

    /// Every protocol checker of the tree (empty unless PlatformOptions::check_protocol).
    std::vector<const model::ProtocolChecker*> checkers() const;

private:
    void start_program(uint64_t addr, uint64_t size);
    bool dispatch(const compiler::BoundOp& op);
    void program_ended();
    bool debug_access(tlm::tlm_command command, uint64_t addr, uint8_t* data, size_t len);
    model::Memory& memory(const hw::Location& where);

    hw::Config config_;
    hw::AddressMap map_;  ///< refers to config_: declared after it
    PlatformOptions options_;
    Wiring wiring_;
    model::PageArena pages_;  ///< every memory's pages: declared before the memories, so it outlives them
    std::unique_ptr<model::Interconnect> noc_;
    std::vector<std::unique_ptr<model::DramChannel>> dram_;
    std::vector<std::unique_ptr<model::DmaEngine>> dma_;
    std::vector<std::unique_ptr<ComputeTile>> tiles_;
    std::unique_ptr<HostInterface> host_;
    std::unique_ptr<model::Sequencer> sequencer_;
    /// The fabrics' and vector engines' arithmetic (PlatformOptions::helper_threads).
    std::unique_ptr<model::HelperThread> compute_helper_;
    std::unique_ptr<model::HelperThread> copy_helper_;   ///< the movers' bytes
    compiler::BoundProgram program_;
    sc_core::sc_time started_at_, finished_at_;
};

}  // namespace kpu::platform
