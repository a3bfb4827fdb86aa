// Conversions between SystemC time (integer ticks of the kernel's resolution, 1 ps by
// default) and the femtoseconds the timing models compute in. Header-only, no state beyond
// the tick size read from the kernel once per module.
#pragma once

#include <systemc>

#include "models/port_timer.h"

namespace kpu::model {

class TimeBase {
public:
    TimeBase() : fs_per_tick_(Fs(sc_core::sc_get_time_resolution().to_seconds() * double(kFsPerSecond) + 0.5)) {}

    Fs to_fs(const sc_core::sc_time& t) const { return Fs(t.value()) * fs_per_tick_; }
    Fs now() const { return to_fs(sc_core::sc_time_stamp()); }
    /// Rounds up to the next kernel tick: an event never fires before the model says.
    sc_core::sc_time to_time(Fs fs) const { return sc_core::sc_time::from_value(ticks_up(fs)); }
    /// Rounds up to a whole kernel tick.
    Fs ceil(Fs fs) const { return ticks_up(fs) * fs_per_tick_; }
    /// Delay from now (tick-aligned) until `at`, rounded up to a tick; zero if `at` has passed.
    sc_core::sc_time until(Fs at, Fs now_fs) const { return at > now_fs ? to_time(at - now_fs) : sc_core::SC_ZERO_TIME; }

private:
    /// Kernel ticks in `fs`, rounded up. The default 1 ps resolution gets a constant divisor
    /// (a multiply instead of a 40-cycle division: movers round several times per burst).
    Fs ticks_up(Fs fs) const {
        return fs_per_tick_ == 1000 ? (fs + 999) / 1000 : (fs + fs_per_tick_ - 1) / fs_per_tick_;
    }

    Fs fs_per_tick_;
};

}  // namespace kpu::model
