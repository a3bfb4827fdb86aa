#include "models/helper_thread.h"

#include <chrono>
#include <stdexcept>
#include <string>

namespace kpu::model {

HelperThread::HelperThread(uint64_t wake_weight) : wake_weight_(wake_weight), thread_([this] { loop(); }) {}

HelperThread::~HelperThread() {
    {
        std::lock_guard<std::mutex> lock(mutex_);
        stop_ = true;
    }
    work_.notify_one();
    thread_.join();
}

HelperThread::Ticket HelperThread::submit(std::function<void()> job, uint64_t weight) {
    Ticket ticket;
    bool wake;
    {
        std::lock_guard<std::mutex> lock(mutex_);
        jobs_.push_back({std::move(job), weight});
        ticket = ++submitted_;
        queued_weight_ += weight;
        wake = worth_waking();
    }
    if (wake) work_.notify_one();
    return ticket;
}

void HelperThread::run_next(std::unique_lock<std::mutex>& lock) {
    std::function<void()> job = std::move(jobs_.front().job);
    queued_weight_ -= jobs_.front().weight;
    jobs_.pop_front();
    running_ = true;
    lock.unlock();
    std::exception_ptr error;
    try {
        job();
    } catch (...) {
        error = std::current_exception();
    }
    lock.lock();
    running_ = false;
    ++finished_;
    finished_now_.store(finished_, std::memory_order_release);
    if (error) errors_[finished_] = error;  // jobs finish in ticket order
    done_.notify_all();
    if (worth_waking()) work_.notify_one();  // it woke while a waiter ran this job, and slept again
}

void HelperThread::wait(Ticket ticket) {
    std::unique_lock<std::mutex> lock(mutex_);
    if (ticket == 0 || ticket > submitted_)
        throw std::logic_error("HelperThread::wait: ticket " + std::to_string(ticket) + " was never handed out (" +
                               std::to_string(submitted_) + " so far)");
    while (finished_ < ticket) {
        if (!running_) {  // the next job is not started: run it here
            ++run_by_waiters_;
            run_next(lock);
            continue;
        }
        // The helper runs a job before this one: look for its end a little (a transfer's
        // bytes take microseconds), then sleep.
        const Ticket seen = finished_;
        lock.unlock();
        const auto until = std::chrono::steady_clock::now() + std::chrono::microseconds(50);
        while (finished_now_.load(std::memory_order_acquire) == seen && std::chrono::steady_clock::now() < until)
            std::this_thread::yield();
        lock.lock();
        done_.wait(lock, [&] { return finished_ >= ticket || !running_; });
    }
    if (const auto it = errors_.find(ticket); it != errors_.end()) {
        const std::exception_ptr error = it->second;
        errors_.erase(it);
        std::rethrow_exception(error);
    }
}

void HelperThread::wait_all() {
    std::unique_lock<std::mutex> lock(mutex_);
    while (finished_ < submitted_) {
        if (!running_)
            ++run_by_waiters_, run_next(lock);
        else
            done_.wait(lock, [&] { return finished_ >= submitted_ || !running_; });
    }
}

uint64_t HelperThread::jobs_run() {
    std::lock_guard<std::mutex> lock(mutex_);
    return finished_;
}

uint64_t HelperThread::jobs_run_by_waiters() {
    std::lock_guard<std::mutex> lock(mutex_);
    return run_by_waiters_;
}

bool HelperThread::asleep() {
    std::lock_guard<std::mutex> lock(mutex_);
    return asleep_ && !running_;
}

void HelperThread::loop() {
    std::unique_lock<std::mutex> lock(mutex_);
    for (;;) {
        asleep_ = true;
        work_.wait(lock, [&] { return !running_ && (stop_ || !jobs_.empty()); });
        asleep_ = false;
        if (jobs_.empty()) return;  // stopping, and every job has run
        run_next(lock);
    }
}

}  // namespace kpu::model
