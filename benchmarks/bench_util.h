// Timing and memory helpers shared by the benchmarks (not tests: speed belongs here only).
#pragma once

#include <sys/resource.h>

#include <chrono>
#include <ctime>

namespace kpu::bench {

using Clock = std::chrono::steady_clock;

inline double seconds_since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

/// User + system CPU time of this process so far.
inline double cpu_seconds() {
    rusage usage{};
    getrusage(RUSAGE_SELF, &usage);
    return double(usage.ru_utime.tv_sec + usage.ru_stime.tv_sec) +
           1e-6 * double(usage.ru_utime.tv_usec + usage.ru_stime.tv_usec);
}

/// CPU time of the calling thread so far: for the simulation thread, its own work without
/// the helpers' and without the time other processes held the core.
inline double thread_cpu_seconds() {
    timespec t{};
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
    return double(t.tv_sec) + 1e-9 * double(t.tv_nsec);
}

/// Page faults this process has taken so far (minor: memory first touched; major: read
/// from disk).
/// `who`: RUSAGE_SELF (every thread) or RUSAGE_THREAD (the calling one).
inline long page_faults(int who = RUSAGE_SELF) {
    rusage usage{};
    getrusage(who, &usage);
    return usage.ru_minflt + usage.ru_majflt;
}

/// Peak resident set size of this process so far.
inline double peak_rss_mib() {
    rusage usage{};
    getrusage(RUSAGE_SELF, &usage);
    return double(usage.ru_maxrss) / 1024.0;  // Linux: KiB
}

}  // namespace kpu::bench
