// Conversions between SystemC time (integer ticks of the kernel's resolution, 1 ps by
// default) and the femtoseconds the timing models compute in. Header-only, no state beyond
// the tick size read from the kernel once per module (KernelTicks does the rounding).
#pragma once

#include <systemc>

#include "models/kernel_ticks.h"

namespace kpu::model {

class TimeBase {
public:
    TimeBase() : ticks_{Fs(sc_core::sc_get_time_resolution().to_seconds() * double(kFsPerSecond) + 0.5)} {}

    const KernelTicks& ticks() const { return ticks_; }
    Fs to_fs(const sc_core::sc_time& t) const { return Fs(t.value()) * ticks_.fs_per_tick; }
    Fs now() const { return to_fs(sc_core::sc_time_stamp()); }
    /// Rounds up to the next kernel tick: an event never fires before the model says.
    sc_core::sc_time to_time(Fs fs) const { return sc_core::sc_time::from_value(ticks_.up(fs)); }
    /// Rounds up to a whole kernel tick.
    Fs ceil(Fs fs) const { return ticks_.ceil(fs); }
    /// Delay from now (tick-aligned) until `at`, rounded up to a tick; zero if `at` has passed.
    sc_core::sc_time until(Fs at, Fs now_fs) const { return at > now_fs ? to_time(at - now_fs) : sc_core::SC_ZERO_TIME; }

private:
    KernelTicks ticks_;
};

}  // namespace kpu::model
