// The timed stages between one initiator and one DMI region: an ignorable extension on a
// get_direct_mem_ptr request that every router and memory on the way fills with the
// PortTimers a b_transport would book, in the same order. A mover then copies the bytes
// through the DMI pointer and books those stages itself: the same timing and contention as
// one b_transport per burst, without the socket calls (what the fast path is for).
#pragma once

#include <array>
#include <cstdint>

#include <tlm>

#include "models/port_timer.h"

namespace kpu::model {

struct TimingPath : tlm::tlm_extension<TimingPath> {
    static constexpr uint32_t kMaxStages = 4;  ///< source link, destination link, memory port
    std::array<PortTimer*, kMaxStages> stages{};
    uint32_t count = 0;
    bool complete = true;  ///< false if a stage did not fit (the mover then uses b_transport)

    void add(PortTimer& stage) {
        if (count < kMaxStages)
            stages[count++] = &stage;
        else
            complete = false;
    }

    tlm::tlm_extension_base* clone() const override { return new TimingPath(*this); }
    void copy_from(const tlm::tlm_extension_base& other) override { *this = static_cast<const TimingPath&>(other); }

    /// Adds `stage` to the request's path, if the request carries one.
    static void append(tlm::tlm_generic_payload& trans, PortTimer& stage) {
        if (auto* path = trans.get_extension<TimingPath>()) path->add(stage);
    }
};

}  // namespace kpu::model
