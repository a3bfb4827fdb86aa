// A helper thread that does a platform's host work while the simulation goes on: the fabrics'
// arithmetic and the movers' bytes. Plain C++, no SystemC: the helper never touches the
// kernel, only the memory a job was given.
//
// Why it is exact. A fabric submits its GEMM when a MATMUL starts; a mover hands over the
// bytes of a transfer once it has booked its bursts. Each waits for its job before its op's
// completion is delivered, so the job runs inside the op's simulated interval. Nothing reads
// what such a job writes before that completion, and nothing overwrites what it reads: every
// op that does depends on the completion (the binder's read-after-write and
// write-after-read dependencies, the ones the hardware needs). Jobs on one helper run in
// submission order, so the transfers of one mover move their bytes in the order it executed
// them, and any two transfers in the order they finished executing; two that touch the same
// bytes are ordered by their dependencies anyway. Same kernel, same bytes, same order: the
// results are the bits of the inline path, and the cycles are untouched (no job decides a
// time).
//
// One helper per kind of work per platform (no global pool: two platforms in one simulation
// each have their own). Jobs run one at a time, in submission order, each by whichever
// thread gets to it first: the helper, or a thread in wait() that finds the next job not
// started (it runs it rather than sleep while the helper wakes up, which can take tens of
// microseconds on a loaded machine). wait(ticket) returns once that job is done, and
// rethrows the exception it threw, if any.
#pragma once

#include <atomic>
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

class HelperThread {
public:
    using Ticket = uint64_t;

    /// `wake_weight`: a sleeping helper is woken once the jobs queued for it weigh at least
    /// this much (see submit); 0 wakes it for every job.
    explicit HelperThread(uint64_t wake_weight = 0);
    /// Runs every job already submitted, then joins the thread. No other thread may be in
    /// wait() or wait_all() by then.
    ~HelperThread();
    HelperThread(const HelperThread&) = delete;
    HelperThread& operator=(const HelperThread&) = delete;

    /// Queues `job`; the ticket names it for wait(). `weight` (a copy's bytes, say) counts
    /// towards waking a sleeping helper: waking a thread costs the submitter a system call of
    /// microseconds, as much as copying tens of KiB, so small jobs wait in the queue until
    /// enough has gathered, or until a thread waits for them and runs them itself. An awake
    /// helper takes every queued job, whatever its weight.
    Ticket submit(std::function<void()> job, uint64_t weight = 0);
    /// Returns once the job `ticket` (and every job before it) has run, running those not yet
    /// started on the calling thread; rethrows what that job threw. A ticket submit() has not
    /// handed out is a std::logic_error.
    void wait(Ticket ticket);
    /// Returns once every job submitted so far has run (exceptions stay for their wait()).
    void wait_all();
    /// Jobs run so far, and those of them that a waiting thread ran.
    uint64_t jobs_run();
    uint64_t jobs_run_by_waiters();
    /// Whether the helper thread sleeps, waiting for work (it is woken as submit says).
    bool asleep();

private:
    void loop();
    /// Runs the next job; `lock` is held on entry and exit, released while the job runs.
    void run_next(std::unique_lock<std::mutex>& lock);

    std::mutex mutex_;
    std::condition_variable work_, done_;
    struct Queued {
        std::function<void()> job;
        uint64_t weight;
    };
    std::deque<Queued> jobs_;
    const uint64_t wake_weight_;
    uint64_t queued_weight_ = 0;  ///< of the jobs in jobs_
    bool asleep_ = false;         ///< the helper waits on work_
    /// Whether to wake the helper: it sleeps, nobody runs a job, and the queue weighs enough.
    bool worth_waking() const { return asleep_ && !running_ && !jobs_.empty() && queued_weight_ >= wake_weight_; }
    Ticket submitted_ = 0, finished_ = 0;
    std::atomic<Ticket> finished_now_{0};  ///< finished_, for waiters that spin without the lock
    uint64_t run_by_waiters_ = 0;
    std::unordered_map<Ticket, std::exception_ptr> errors_;  ///< jobs that threw, until waited for
    bool running_ = false;  ///< a job is running (on some thread): nobody starts the next one
    bool stop_ = false;
    std::thread thread_;  ///< last: starts once everything above exists
};

}  // namespace kpu::model
