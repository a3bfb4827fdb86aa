// Build-time choices of a KpuPlatform that are not hardware (the hardware is the Config).
#pragma once

#include <systemc>

namespace kpu::platform {

struct PlatformOptions {
    /// How far a mover may run ahead of the kernel before it syncs. Larger is faster to
    /// simulate; smaller interleaves contending movers more finely. It must exceed the
    /// DRAM interleave time (channels x interleave_bytes / channel bandwidth) for a transfer
    /// to keep all channels busy, which 1 us does for every shipped config.
    sc_core::sc_time quantum{1, sc_core::SC_US};
    /// Put a ProtocolChecker on every initiator->router and router->memory link (tests).
    bool check_protocol = false;
};

}  // namespace kpu::platform
