// kpu-sim --progress: the line's figures, and the reporter thread's lines from its source.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <sstream>
#include <thread>

#include "sc_main/progress.h"

namespace kpu::cli {
namespace {

TEST(Progress, LineGivesTheShareTheTimesAndAnEstimateOfWhatIsLeft) {
    EXPECT_EQ(progress_line({25, 100, 2e-6}, 1.0), "kpu-sim: 25.0 % of 100 ops, 2 us simulated, 1.0 s wall, about 3 s left");
    EXPECT_EQ(progress_line({1, 3, 0.00213}, 4.2), "kpu-sim: 33.3 % of 3 ops, 2.13 ms simulated, 4.2 s wall, about 8 s left");
    EXPECT_EQ(progress_line({188052, 506880, 0.00213}, 4.2),
              "kpu-sim: 37.1 % of 506880 ops, 2.13 ms simulated, 4.2 s wall, about 7 s left");
    EXPECT_EQ(progress_line({99, 100, 1e-3}, 20.0), "kpu-sim: 99.0 % of 100 ops, 1 ms simulated, 20.0 s wall, less than a second left");
    EXPECT_EQ(progress_line({0, 506880, 0}, 0.5), "kpu-sim: 0.0 % of 506880 ops, 0 ns simulated, 0.5 s wall");
    EXPECT_EQ(progress_line({7, 7, 1.5}, 12.0), "kpu-sim: 100.0 % of 7 ops, 1.5 s simulated, 12.0 s wall");
    EXPECT_EQ(progress_line({0, 0, 0}, 0.3), "kpu-sim: starting the program, 0.3 s wall");
}

TEST(Progress, ReporterWritesALinePerIntervalFromItsSourceUntilDestroyed) {
    std::ostringstream out;
    std::atomic<int> calls{0};
    {
        ProgressReporter reporter(
            [&] {
                ++calls;
                return Progress{uint64_t(calls.load()), 100, 1e-3};
            },
            0.002, out);
        for (int i = 0; i < 5000 && calls < 3; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    const int after = calls;
    ASSERT_GE(after, 3) << "no line in 5 s";
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    EXPECT_EQ(calls, after) << "the reporter stopped with its destruction";
    std::istringstream lines(out.str());
    std::string line;
    int n = 0;
    while (std::getline(lines, line)) {
        ++n;
        EXPECT_EQ(line.rfind("kpu-sim: " + std::to_string(n) + ".0 % of 100 ops, 1 ms simulated, ", 0), 0u) << line;
    }
    EXPECT_EQ(n, after);
}

}  // namespace
}  // namespace kpu::cli
