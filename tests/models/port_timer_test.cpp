// The port model every memory and link uses: exact femtosecond numbers for latency,
// bandwidth serialisation and the choice of port.
#include <gtest/gtest.h>

#include <algorithm>
#include <iterator>
#include <map>
#include <random>
#include <vector>

#include "models/port_timer.h"

namespace kpu::model {
namespace {

// 8 bytes per cycle at 1 GHz, 10 cycles latency: 64 B occupy 8 ns, answer after 18 ns.
TEST(PortTimer, SingleBurstCostsLatencyPlusSizeOverBandwidth) {
    PortTimer port(1, 8e9, 1e9, 10);
    const auto b = port.book(0, 64);
    EXPECT_EQ(b.start, 0u);
    EXPECT_EQ(b.done, 18'000'000u);  // 10 ns + 64 B / 8 GB/s, in fs
}

TEST(PortTimer, LatencyPipelinesAndBandwidthSerialises) {
    PortTimer port(1, 8e9, 1e9, 10);
    port.book(0, 64);
    const auto second = port.book(0, 64);  // arrives while the first still occupies the port
    EXPECT_EQ(second.start, 8'000'000u);
    EXPECT_EQ(second.done, 26'000'000u);
    const auto late = port.book(100'000'000, 64);  // arrives to an idle port
    EXPECT_EQ(late.start, 100'000'000u);
    EXPECT_EQ(port.busy(), 24'000'000u);
}

TEST(PortTimer, TwoPortsServeTwoBurstsAtOnceAndTheThirdWaits) {
    PortTimer port(2, 8e9, 1e9, 0);
    EXPECT_EQ(port.book(0, 64).start, 0u);
    EXPECT_EQ(port.book(0, 64).start, 0u);
    EXPECT_EQ(port.book(0, 64).start, 8'000'000u);
}

TEST(PortTimer, FractionalPicosecondsDoNotAccumulate) {
    PortTimer port(1, 192e9, 1.5e9, 0);  // 64 B = 333.33 ps
    PortTimer::Booking last;
    for (int i = 0; i < 3'000'000; ++i) last = port.book(0, 64);
    // 3e6 bursts of 64 B at 192 GB/s end at exactly 1 ms (within a few fs of rounding per burst).
    EXPECT_NEAR(double(last.done), 1e12, 3e6 * 0.5);
}

// Out-of-order bookings (movers run ahead of the kernel by a quantum) fill idle gaps instead
// of queueing behind bursts booked earlier for a later time.
TEST(PortTimer, AnEarlierArrivalBookedLaterFillsTheGapBeforeAFutureBurst) {
    PortTimer port(1, 8e9, 1e9, 10);  // 64 B occupy 8 ns
    const int a = 0, b = 0;
    EXPECT_EQ(port.book(100'000'000, 64, &a).start, 100'000'000u);  // booked first, for t = 100 ns
    const auto early = port.book(0, 64, &b);                        // booked second, arrives at 0
    EXPECT_EQ(early.start, 0u);
    EXPECT_EQ(early.done, 18'000'000u);
    EXPECT_FALSE(early.contended);
    // A burst arriving at 95 ns does not fit the 5 ns before the future burst: it goes after it.
    EXPECT_EQ(port.book(95'000'000, 64, &b).start, 108'000'000u);
    // The gap [8 ns, 100 ns) still takes a burst arriving at 50 ns.
    EXPECT_EQ(port.book(50'000'000, 64, &b).start, 50'000'000u);
    EXPECT_EQ(port.busy(), 32'000'000u);
}

TEST(PortTimer, AGapTooSmallIsSkippedAndTouchingBurstsMerge) {
    PortTimer port(1, 8e9, 1e9, 0);
    port.book(0, 64);           // [0, 8)
    port.book(12'000'000, 64);  // [12, 20): a 4 ns gap at 8
    port.book(20'000'000, 64);  // [20, 28): touches the one before
    EXPECT_EQ(port.book(0, 64).start, 28'000'000u);       // 8 ns fit nowhere before 28 ns
    EXPECT_EQ(port.book(0, 32).start, 8'000'000u);        // 4 ns fit the gap exactly
    EXPECT_EQ(port.book(0, 8).start, 36'000'000u);        // now no gap is left before 36 ns
}

TEST(PortTimer, TwoPortsEachFillTheirOwnGaps) {
    PortTimer port(2, 8e9, 1e9, 0);
    EXPECT_EQ(port.book(16'000'000, 64).start, 16'000'000u);  // port 0
    EXPECT_EQ(port.book(16'000'000, 64).start, 16'000'000u);  // port 1
    EXPECT_EQ(port.book(0, 64).start, 0u);                    // the gap before on port 0
    EXPECT_EQ(port.book(0, 64).start, 0u);                    // and on port 1
    EXPECT_EQ(port.book(0, 64).start, 8'000'000u);            // both full until 8 ns: port 0 at 8
    EXPECT_EQ(port.book(4'000'000, 64).start, 8'000'000u);    // port 1 also free at 8
    EXPECT_EQ(port.book(0, 64).start, 24'000'000u);
}

// The calendar as first written (a std::map of busy intervals per port), kept here as the
// specification: the PortTimer must book exactly as it does, whatever its data structure.
class ReferencePorts {
public:
    ReferencePorts(uint32_t ports, Fs horizon) : ports_(ports), horizon_(horizon) {}

    PortTimer::Booking book(Fs arrival, Fs occupied, Fs latency, const void* owner) {
        size_t best = 0;
        Fs start = fit(ports_[0], arrival, occupied);
        for (size_t p = 1; p < ports_.size() && start > arrival; ++p) {
            const Fs s = fit(ports_[p], arrival, occupied);
            if (s < start) start = s, best = p;
        }
        Port& port = ports_[best];
        const bool contended = start > arrival && port.owner != owner;
        insert(port, start, start + occupied);
        port.owner = owner;
        if (arrival > latest_) {
            latest_ = arrival;
            const Fs oldest = latest_ > horizon_ ? latest_ - horizon_ : 0;
            while (port.busy.size() > 1 && port.busy.begin()->second < oldest) port.busy.erase(port.busy.begin());
        }
        return {start, start + latency + occupied, contended};
    }

private:
    struct Port {
        std::map<Fs, Fs> busy;
        const void* owner = nullptr;
    };
    static Fs fit(const Port& port, Fs arrival, Fs occupied) {
        if (port.busy.empty() || arrival >= std::prev(port.busy.end())->second) return arrival;
        auto it = port.busy.upper_bound(arrival);
        Fs start = arrival;
        if (it != port.busy.begin()) start = std::max(start, std::prev(it)->second);
        for (int searched = 0; it != port.busy.end() && it->first < start + occupied; ++it) {
            start = std::max(start, it->second);
            if (++searched == 32) return std::max(start, std::prev(port.busy.end())->second);
        }
        return start;
    }
    static void insert(Port& port, Fs start, Fs end) {
        auto next = port.busy.lower_bound(start);
        if (next != port.busy.begin()) {
            auto prev = std::prev(next);
            if (prev->second == start) start = prev->first, port.busy.erase(prev);
        }
        if (next != port.busy.end() && next->first == end) end = next->second, next = port.busy.erase(next);
        port.busy.emplace_hint(next, start, end);
    }
    std::vector<Port> ports_;
    Fs horizon_;
    Fs latest_ = 0;
};

// Several initiators, each booking in its own time order but running ahead of the others
// by up to a "quantum", with burst sizes that fragment the calendar (so the 32-interval
// search bound and the horizon both come into play): every booking must match the
// reference to the femtosecond, also when the timer is told a floor and forgets the past.
TEST(PortTimer, OutOfOrderBookingsMatchTheReferenceCalendarExactly) {
    for (uint32_t ports : {1u, 2u, 3u}) {
        for (Fs quantum : {Fs(50'000'000), Fs(1'000'000'000), Fs(20'000'000'000)}) {
            // A horizon shorter than the quantum drops intervals a late booking could still hit.
            const Fs horizon = ports == 2 ? quantum / 2 : 3 * quantum;
            PortTimer timer(ports, 8e9, 1e9, 7);  // 1 ns per 8 bytes, 7 ns latency
            timer.set_horizon(horizon);
            ReferencePorts reference(ports, horizon);
            std::mt19937_64 rng(ports * 1000 + quantum);
            constexpr int kInitiators = 5;
            std::vector<Fs> clock(kInitiators, 0);
            int owners[kInitiators];
            for (int i = 0; i < 150'000; ++i) {
                const int who = int(rng() % kInitiators);
                // Small bursts join only later, so the timer meets a new shortest burst.
                const uint64_t bytes = i < 30'000 ? std::vector<uint64_t>{64, 200, 1024}[rng() % 3]
                                                  : std::vector<uint64_t>{8, 16, 64, 64, 64, 200, 1024}[rng() % 7];
                // Each initiator advances its own time; the one furthest behind is at most a
                // quantum behind the front (the kernel holds the others back). Initiator 0
                // streams like an engine a little slower than the port: bursts with slivers
                // of idle time between them that no burst fits.
                if (who == 0)
                    clock[who] += timer.occupancy(bytes) * 4 / 3;
                else
                    clock[who] += rng() % 2 == 0 ? rng() % (24 * 8'000'000) : 0;
                const Fs front = *std::max_element(clock.begin(), clock.end());
                if (front > quantum) clock[who] = std::max(clock[who], front - quantum);
                // Every initiator's clock only moves forward: none books before the slowest.
                const Fs floor = *std::min_element(clock.begin(), clock.end());
                const PortTimer::Booking got = timer.book(clock[who], bytes, &owners[who], false, floor);
                const PortTimer::Booking want =
                    reference.book(clock[who], timer.occupancy(bytes), timer.latency(), &owners[who]);
                ASSERT_EQ(got.start, want.start) << "booking " << i << ", " << ports << " ports";
                ASSERT_EQ(got.done, want.done) << "booking " << i;
                ASSERT_EQ(got.contended, want.contended) << "booking " << i;
                if (rng() % 2) clock[who] = got.done - timer.latency();  // sometimes follow the port
            }
        }
    }
}


// Trains among bursts, booked out of order (one port): a train of k bursts must book as if
// its bursts came one after another from its first arrival (the front-compressed train),
// each filling the first gap that holds it, which is what the reference calendar does
// burst by burst; its last burst is done no earlier than its own arrival allows.
TEST(PortTimer, TrainsAmongBurstsBookLikeTheirBurstsOneAfterAnother) {
    for (Fs quantum : {Fs(50'000'000), Fs(1'000'000'000)}) {
        PortTimer timer(1, 8e9, 1e9, 7);
        ReferencePorts reference(1, 100'000'000'000);
        std::mt19937_64 rng(quantum);
        constexpr int kInitiators = 4;
        std::vector<Fs> clock(kInitiators, 0);
        int owners[kInitiators];
        const Fs o = timer.occupancy(64), latency = timer.latency();
        for (int i = 0; i < 40'000; ++i) {
            const int who = int(rng() % kInitiators);
            clock[who] += rng() % 2 == 0 ? rng() % (24 * 8'000'000) : 0;
            const Fs front = *std::max_element(clock.begin(), clock.end());
            if (front > quantum) clock[who] = std::max(clock[who], front - quantum);
            const Fs floor = *std::min_element(clock.begin(), clock.end());
            if (who < 2) {  // a single burst
                const uint64_t bytes = std::vector<uint64_t>{16, 64, 200}[rng() % 3];
                const auto got = timer.book(clock[who], bytes, &owners[who], false, floor);
                const auto want = reference.book(clock[who], timer.occupancy(bytes), latency, &owners[who]);
                ASSERT_EQ(got.start, want.start) << "booking " << i;
                ASSERT_EQ(got.done, want.done) << "booking " << i;
                continue;
            }
            const uint32_t k = 2 + uint32_t(rng() % 15);
            const Fs first = clock[who], last = first + Fs(k - 1) * Fs(rng() % 3) * o / 2;
            const auto got = timer.book_train(first, last, k, 64ull * k, 64, 64, &owners[who], false, floor);
            Fs at = first, first_done = 0, end = 0;
            for (uint32_t j = 0; j < k; ++j) {
                const auto b = reference.book(at, o, latency, &owners[who]);
                if (j == 0) first_done = b.done;
                at = end = b.done - latency;
            }
            ASSERT_EQ(got.first_done, first_done) << "train " << i;
            ASSERT_EQ(got.last_done, std::max(end, last + o) + latency) << "train " << i;
            clock[who] = last;
        }
    }
}

// A train of one initiator's bursts, booked as one interval: for a lone initiator its first
// and last burst are done exactly when booking every burst would have them done, whether
// the port is the bottleneck (bursts queue), faster than the arrivals (each starts on
// arrival), or two ports share the train. Times in fs; the spacings are whole fs so that
// both ways round alike.
TEST(PortTimer, ATrainFinishesWhenItsBurstsBookedOneByOneWould) {
    struct Case {
        const char* name;
        uint32_t ports;
        Fs spacing;  // between arrivals
    };
    const Case cases[] = {{"port is the bottleneck", 1, 3'000'000},   // 64 B occupy 8 ns
                          {"port is faster", 1, 11'000'000},
                          {"arrivals match the port", 1, 8'000'000},
                          {"two ports, bottleneck", 2, 3'000'000},
                          {"two ports, faster", 2, 11'000'000}};
    for (const Case& c : cases) {
        for (uint32_t bursts : {2u, 3u, 16u, 17u}) {
            PortTimer one_by_one(c.ports, 8e9, 1e9, 10), train(c.ports, 8e9, 1e9, 10);
            const Fs first = 1'000'000, last = first + (bursts - 1) * c.spacing;
            Fs first_done = 0, last_done = 0;
            for (uint32_t j = 0; j < bursts; ++j) {
                const auto b = one_by_one.book(first + j * c.spacing, 64);
                if (j == 0) first_done = b.done;
                last_done = std::max(last_done, b.done);
            }
            const auto t = train.book_train(first, last, bursts, 64ull * bursts, 64, 64);
            EXPECT_EQ(t.first_done, first_done) << c.name << ", " << bursts << " bursts";
            EXPECT_EQ(t.last_done, last_done) << c.name << ", " << bursts << " bursts";
            EXPECT_FALSE(t.contended);
            EXPECT_EQ(train.busy(), one_by_one.busy()) << c.name;
            EXPECT_EQ(train.traffic().reads, bursts);
            EXPECT_EQ(train.traffic().bytes_read, 64ull * bursts);
        }
    }
}

// A train is one busy interval: a second initiator's train waits behind it (and says it
// was contended), or fills idle gaps before it, as many whole bursts as each gap holds,
// the rest after (as its bursts booked one by one would).
TEST(PortTimer, ASecondInitiatorsTrainQueuesBehindOrFillsTheGapsBeforeIt) {
    PortTimer port(1, 8e9, 1e9, 0);  // 64 B occupy 8 ns
    const int a = 0, b = 0;
    // a: 8 bursts arriving from 100 ns on, 8 ns apart: busy [100, 164) ns.
    auto ta = port.book_train(100'000'000, 156'000'000, 8, 512, 64, 64, &a);
    EXPECT_EQ(ta.last_done, 164'000'000u);
    // b: 4 bursts from 120 ns: they queue behind a's train, [164, 196) ns.
    auto tb = port.book_train(120'000'000, 144'000'000, 4, 256, 64, 64, &b);
    EXPECT_TRUE(tb.contended);
    EXPECT_EQ(tb.first_done, 172'000'000u);
    EXPECT_EQ(tb.last_done, 196'000'000u);
    // b again, 4 bursts from 0 ns (booked late, as a decoupled initiator does): [0, 32) ns
    // is idle, so it goes there.
    tb = port.book_train(0, 24'000'000, 4, 256, 64, 64, &b);
    EXPECT_FALSE(tb.contended);
    EXPECT_EQ(tb.last_done, 32'000'000u);
    // 10 bursts from 40 ns need 80 ns; the 60 ns gap before a's train holds 7 of them
    // ([40, 96) ns), the other 3 go after b's first train ([196, 220) ns).
    tb = port.book_train(40'000'000, 112'000'000, 10, 640, 64, 64, &b);
    EXPECT_EQ(tb.first_done, 48'000'000u);
    EXPECT_EQ(tb.last_done, 220'000'000u);
    EXPECT_EQ(port.busy(), 26u * 8'000'000u);
    // Now only [32, 40) and [96, 100) ns are idle before 220 ns: one burst fits the first.
    tb = port.book_train(30'000'000, 38'000'000, 2, 128, 64, 64, &b);
    EXPECT_EQ(tb.first_done, 40'000'000u);
    EXPECT_EQ(tb.last_done, 228'000'000u);
}

}  // namespace
}  // namespace kpu::model
