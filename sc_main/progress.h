// kpu-sim --progress: a line on stderr every few wall-seconds while a program runs, from a
// thread of its own that only reads the sequencer's progress counters (never SystemC).
// Plain C++: the source of the figures is a function, so tests drive it without a platform.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <ostream>
#include <string>
#include <thread>

namespace kpu::cli {

struct Progress {
    uint64_t completed = 0, total = 0;  ///< ops
    double simulated_s = 0;             ///< from START to the latest completion
};

/// "kpu-sim: 37.1 % of 506880 ops, 2.13 ms simulated, 4.2 s wall, about 7 s left"; the
/// estimate (wall time per op so far, times the ops left) only once an op has completed;
/// "kpu-sim: starting the program, 0.3 s wall" before the program has started.
std::string progress_line(const Progress& p, double wall_s);

class ProgressReporter {
public:
    /// Writes progress_line(source(), wall time since `start`) to `out` every `interval_s`
    /// seconds until destroyed; `out` and `source` must outlive it.
    ProgressReporter(std::function<Progress()> source, double interval_s, std::ostream& out,
                     std::chrono::steady_clock::time_point start = std::chrono::steady_clock::now());
    ~ProgressReporter();
    ProgressReporter(const ProgressReporter&) = delete;
    ProgressReporter& operator=(const ProgressReporter&) = delete;

private:
    void loop();

    std::function<Progress()> source_;
    double interval_s_;
    std::ostream& out_;
    std::chrono::steady_clock::time_point start_;
    std::mutex mutex_;
    std::condition_variable stop_cv_;
    bool stop_ = false;
    std::thread thread_;  ///< last: starts once everything above exists
};

}  // namespace kpu::cli
