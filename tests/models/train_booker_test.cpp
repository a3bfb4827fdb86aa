// TrainBooker without a kernel: when the engine issues bursts, what a train costs on the
// stages of its path (the same as its bursts booked one by one), how long trains get, and
// when the mover must sync. Times in femtoseconds; all clocks 1 GHz.
#include <gtest/gtest.h>

#include <vector>

#include "models/train_booker.h"

namespace kpu::model {
namespace {

constexpr Fs kNs = 1'000'000;
constexpr Fs kQuantum = 1000 * kNs;
const char kOwnerA = 'a', kOwnerB = 'b';  ///< two initiators, told apart by address

/// Two stages: a source memory (32 GB/s, 10 cycles: 2 ns a 64-byte burst) and a
/// destination memory (64 GB/s, 5 cycles: 1 ns a burst).
struct Path {
    PortTimer source{1, 32e9, 1e9, 10}, destination{1, 64e9, 1e9, 5};
    TimingPath from, to;
    Path() { from.add(source), to.add(destination); }
};

// A 16 GB/s engine issues a 64-byte burst every 4 ns from the kernel's time on.
TEST(TrainBooker, TheEngineIssuesBurstsAtItsBandwidthFromTheKernelsTime) {
    TrainBooker booker(16e9, KernelTicks{}, kQuantum, &kOwnerA);
    EXPECT_EQ(booker.issue(64), 0u);
    EXPECT_EQ(booker.issue(64), 4 * kNs);
    EXPECT_EQ(booker.issue(32), 8 * kNs);
    EXPECT_EQ(booker.engine_free(), 10 * kNs);
    booker.set_now(100 * kNs);  // the engine idled: the next burst goes at the kernel's time
    EXPECT_EQ(booker.issue(64), 100 * kNs);
}

// Burst i issued at 4i ns: source done at 4i + 10 + 2, destination at that + 5 + 1, so the
// last of 16 is done at 4 x 15 + 18 = 78 ns, booked as one train or burst by burst.
TEST(TrainBooker, ATrainCostsWhatItsBurstsBookedOneByOneCost) {
    Path train_path;
    TrainBooker booker(16e9, KernelTicks{}, kQuantum, &kOwnerA);
    booker.set_burst(64);
    booker.set_train_bytes(1024);
    EXPECT_EQ(booker.add(64, 1024), 1024u);  // whole bursts, all at once
    EXPECT_TRUE(booker.train_full());
    const TrainBooker::Booked t = booker.book_train(train_path.from, train_path.to);
    EXPECT_EQ(t.first_at, 0u);
    EXPECT_EQ(t.bursts, 16u);
    EXPECT_EQ(t.bytes, 1024u);
    EXPECT_EQ(t.done, 78 * kNs);
    EXPECT_TRUE(booker.train_empty());
    EXPECT_FALSE(booker.contended());

    Path burst_path;
    TrainBooker single(16e9, KernelTicks{}, kQuantum, &kOwnerA);
    Fs done = 0;
    for (int i = 0; i < 16; ++i) {
        const Fs read = single.book(burst_path.from, single.issue(64), 64, false);
        done = single.book(burst_path.to, read, 64, true);
    }
    EXPECT_EQ(done, 78 * kNs);
    EXPECT_EQ(burst_path.source.traffic().reads, train_path.source.traffic().reads);
    EXPECT_EQ(burst_path.destination.traffic().bytes_written, 1024u);
    EXPECT_EQ(train_path.destination.traffic().bytes_written, 1024u);
}

// Trains of train_bytes; after two that queued behind nobody, four times that; 0 books
// every burst on its own.
TEST(TrainBooker, AMoverAloneGetsLongerTrainsAfterTwoThatQueuedBehindNobody) {
    Path path;
    TrainBooker booker(16e9, KernelTicks{}, kQuantum, &kOwnerA);
    booker.set_burst(64);
    booker.set_train_bytes(256);
    std::vector<uint64_t> sizes;
    for (int i = 0; i < 4; ++i) {
        uint64_t bytes = 0;
        while (!booker.train_full()) bytes += booker.add(64, 1 << 20);
        sizes.push_back(bytes);
        booker.book_train(path.from, path.to);
    }
    EXPECT_EQ(sizes, (std::vector<uint64_t>{256, 256, 1024, 1024}));
    booker.idle();  // going idle forgets it
    EXPECT_EQ(booker.next_train_cap(), 256u);

    TrainBooker per_burst(16e9, KernelTicks{}, kQuantum, &kOwnerA);
    per_burst.set_burst(64);
    EXPECT_EQ(per_burst.add(64, 1 << 20), 64u);
    EXPECT_TRUE(per_burst.train_full());
}

// Two movers on one stage: the second queues behind the first, is told so, drops back to
// short trains, and must sync once it has moved a train's worth of contended bytes.
TEST(TrainBooker, AMoverThatQueuesBehindAnotherIsToldToSyncEachTrain) {
    PortTimer shared(1, 16e9, 1e9, 0);
    TimingPath path;
    path.add(shared);
    TrainBooker a(64e9, KernelTicks{}, kQuantum, &kOwnerA), b(64e9, KernelTicks{}, kQuantum, &kOwnerB);
    for (TrainBooker* m : {&a, &b}) m->set_burst(64), m->set_train_bytes(256);
    a.add(64, 256);
    const TrainBooker::Booked first = a.book_train(path, TimingPath{});
    EXPECT_FALSE(a.contended());
    EXPECT_EQ(first.done, 16 * kNs);  // 4 bursts of 4 ns on the shared stage
    EXPECT_FALSE(a.pace(first.done, first.bytes));
    b.add(64, 256);
    const TrainBooker::Booked second = b.book_train(path, TimingPath{});
    EXPECT_TRUE(b.contended());
    EXPECT_EQ(second.done, 32 * kNs);  // behind a's four
    EXPECT_TRUE(b.pace(second.done, second.bytes));
    b.synced(second.done);
    EXPECT_EQ(b.now(), 32 * kNs);
}

// Without contention a mover syncs when its engine is a quantum ahead of the kernel.
TEST(TrainBooker, AMoverAloneSyncsWhenItsEngineIsAQuantumAhead) {
    TrainBooker booker(16e9, KernelTicks{}, 100 * kNs, &kOwnerA);
    booker.set_burst(64);
    int bursts = 0;
    while (!booker.pace(0, 64)) booker.issue(64), ++bursts;
    EXPECT_EQ(bursts, 25);  // 25 x 4 ns = the quantum
    EXPECT_EQ(booker.engine_free(), 100 * kNs);
}

}  // namespace
}  // namespace kpu::model
