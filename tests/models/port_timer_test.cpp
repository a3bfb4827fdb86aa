// The port model every memory and link uses: exact femtosecond numbers for latency,
// bandwidth serialisation and the choice of port.
#include <gtest/gtest.h>

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

}  // namespace
}  // namespace kpu::model
