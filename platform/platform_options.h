// Build-time choices of a KpuPlatform that are not hardware (the hardware is the Config).
#pragma once

#include <systemc>

namespace kpu::platform {

struct PlatformOptions {
    /// How far a mover may run ahead of the kernel before it syncs. Larger is faster to
    /// simulate; smaller interleaves contending movers more finely. KpuPlatform raises it to
    /// 1.25 x the config's mover window (hw::Derived::mover_window_s) where it is less, so
    /// that it never limits a transfer's throughput (docs/models.md, Temporal decoupling).
    sc_core::sc_time quantum{1, sc_core::SC_US};
    /// Movers copy through DMI and book the same ports themselves (identical timing, several
    /// times faster); false: one b_transport per read and per write of every burst.
    bool mover_dmi = true;
    /// Timing granularity of the DMI path (Mover::set_train_bytes): runs of bursts between
    /// the same two regions are booked as one train of up to this many bytes per stage, and
    /// contending movers take turns this many bytes at a time; a mover streaming alone books 4x
    /// that (Mover::set_train_bytes). 0: every burst on its own, exactly as b_transport times
    /// it (slower; what the DMI-equals-TLM tests use).
    uint32_t train_bytes = 1024;
    /// Run the fabrics' arithmetic and the movers' bytes on two helper threads
    /// (model::HelperThread, per platform) while the simulation goes on: same results and
    /// cycles, less wall time where a second core is free. false: everything runs inline on
    /// the simulation thread.
    bool helper_threads = true;
    /// Put a ProtocolChecker on every initiator->router and router->memory link (tests).
    bool check_protocol = false;
};

}  // namespace kpu::platform
