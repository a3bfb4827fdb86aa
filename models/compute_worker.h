// A helper thread that runs the fabrics' arithmetic while the simulation goes on. Plain C++,
// no SystemC: the worker never touches the kernel, only the memory a job was given.
//
// Why it is exact: a fabric submits its GEMM when a MATMUL starts and waits for it before the
// MATMUL completes (SystolicFabric::run), so the job runs inside the op's simulated interval.
// Nothing else reads the job's accumulators in that interval, and nothing writes its operands
// in L1: an op that overwrites them depends on the MATMUL's completion (the binder's
// write-after-read dependencies, the same ones the hardware needs). Same kernel, same
// operands, same order of additions: the results are the bits of the inline path.
//
// One thread per platform (no global pool: two platforms in one simulation each have their
// own), jobs run first in, first out. wait(ticket) blocks the simulation thread until that
// job is done, and rethrows the exception that job threw, if any.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <exception>
#include <functional>
#include <mutex>
#include <utility>
#include <thread>
#include <unordered_map>

namespace kpu::model {

class ComputeWorker {
public:
    using Ticket = uint64_t;

    ComputeWorker();
    /// Runs every job already submitted, then joins the thread.
    ~ComputeWorker();
    ComputeWorker(const ComputeWorker&) = delete;
    ComputeWorker& operator=(const ComputeWorker&) = delete;

    /// Queues `job`; the ticket names it for wait().
    Ticket submit(std::function<void()> job);
    /// Returns once the job `ticket` (and every job before it) has run; rethrows what that
    /// job threw. A ticket submit() has not handed out is a std::logic_error.
    void wait(Ticket ticket);
    /// Jobs run so far.
    uint64_t jobs_run();

private:
    void loop();

    std::mutex mutex_;
    std::condition_variable work_, done_;
    std::deque<std::function<void()>> jobs_;
    Ticket submitted_ = 0, finished_ = 0;
    std::unordered_map<Ticket, std::exception_ptr> errors_;  ///< jobs that threw, until waited for
    bool stop_ = false;
    std::thread thread_;  ///< last: starts once everything above exists
};

}  // namespace kpu::model
