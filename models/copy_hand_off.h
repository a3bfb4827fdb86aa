// Where a mover's DMI bytes move: inline, or on a helper thread while the simulation goes on
// (helper_thread.h says why that is exact). Plain C++. A transfer's stretches gather here and
// are handed over when it has booked them all; its completion waits for them (the ticket),
// and anything the mover reads or writes on the simulation thread (b_transport, transposes)
// first waits for everything handed over (settle).
#pragma once

#include <cstdint>
#include <cstring>
#include <vector>

#include "models/helper_thread.h"

namespace kpu::model {

class CopyHandOff {
public:
    /// nullptr (the default): every byte moves inline.
    void set_helper(HelperThread* helper) { helper_ = helper; }
    void reserve(size_t stretches) {
        if (helper_) stretches_.reserve(stretches);
    }

    /// One stretch of the current transfer (memmove semantics): moved now, or gathered.
    void move(uint8_t* dst, const uint8_t* src, uint64_t bytes) {
        if (helper_)
            stretches_.push_back({dst, src, bytes});
        else
            std::memmove(dst, src, bytes);
    }
    /// The transfer booked its last burst: its gathered stretches go to the helper. Returns
    /// the ticket its completion must wait for (0: nothing to wait for).
    HelperThread::Ticket finish_transfer() {
        if (stretches_.empty()) return 0;
        hand_over();
        return handed_;
    }
    /// Before the mover touches bytes on the simulation thread: hands over what gathered and
    /// waits until every stretch handed over so far has moved.
    void settle() {
        if (!helper_) return;
        hand_over();
        if (handed_) helper_->wait(handed_), handed_ = 0;
    }
    void wait(HelperThread::Ticket ticket) { helper_->wait(ticket); }

private:
    struct Stretch {
        uint8_t* dst;
        const uint8_t* src;
        uint64_t bytes;
    };
    /// Hands the gathered stretches to the helper (after everything handed over before).
    void hand_over() {
        if (stretches_.empty()) return;
        uint64_t bytes = 0;
        for (const Stretch& s : stretches_) bytes += s.bytes;
        handed_ = helper_->submit([stretches = std::move(stretches_)] {
            for (const Stretch& s : stretches) std::memmove(s.dst, s.src, s.bytes);
        }, bytes);
        stretches_.clear();
    }

    HelperThread* helper_ = nullptr;
    HelperThread::Ticket handed_ = 0;  ///< the last job handed over (0: none, or waited for)
    std::vector<Stretch> stretches_;   ///< the current transfer's, not yet handed over
};

}  // namespace kpu::model
