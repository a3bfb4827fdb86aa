#include "models/train_booker.h"

namespace kpu::model {

TrainBooker::Booked TrainBooker::book_train(const TimingPath& from, const TimingPath& to) {
    Booked booked;
    booked.first_at = train_.first_at;
    booked.bursts = train_.bursts;
    booked.bytes = train_.bytes;
    contended_ = false;
    Fs first = ticks_.ceil(train_.first_at), last = ticks_.ceil(train_.last_at);
    for (const bool write : {false, true}) {
        const TimingPath& path = write ? to : from;
        for (uint32_t i = 0; i < path.count; ++i) {
            const PortTimer::TrainBooking b = path.stages[i]->book_train(
                first, last, train_.bursts, train_.bytes, train_.first_bytes, train_.last_bytes, owner_, write, now_);
            contended_ |= b.contended;
            first = ticks_.ceil(b.first_done), last = ticks_.ceil(b.last_done);
        }
    }
    alone_trains_ = contended_ ? 0 : std::min(alone_trains_ + 1, kAloneTrains);
    train_.bursts = 0, train_.bytes = 0;
    booked.done = last;
    return booked;
}

}  // namespace kpu::model
