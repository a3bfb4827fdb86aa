// Whole ticks of the SystemC kernel's time resolution, in the femtoseconds the timing models
// compute in. Plain C++: TimeBase reads the tick from the kernel, a model that must be
// testable without one (TrainBooker) is given it.
#pragma once

#include "models/port_timer.h"

namespace kpu::model {

struct KernelTicks {
    Fs fs_per_tick = 1000;  ///< 1 ps, SystemC's default resolution

    /// Ticks in `fs`, rounded up. The default 1 ps resolution gets a constant divisor (a
    /// multiply instead of a 40-cycle division: movers round several times per burst).
    Fs up(Fs fs) const { return fs_per_tick == 1000 ? (fs + 999) / 1000 : (fs + fs_per_tick - 1) / fs_per_tick; }
    /// Rounds up to a whole tick: an event never fires before the model says.
    Fs ceil(Fs fs) const { return up(fs) * fs_per_tick; }
};

}  // namespace kpu::model
