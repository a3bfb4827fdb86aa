#include "models/helper_thread.h"

#include <stdexcept>
#include <string>

namespace kpu::model {

HelperThread::HelperThread() : thread_([this] { loop(); }) {}

HelperThread::~HelperThread() {
    {
        std::lock_guard<std::mutex> lock(mutex_);
        stop_ = true;
    }
    work_.notify_one();
    thread_.join();
}

HelperThread::Ticket HelperThread::submit(std::function<void()> job) {
    Ticket ticket;
    {
        std::lock_guard<std::mutex> lock(mutex_);
        jobs_.push_back(std::move(job));
        ticket = ++submitted_;
    }
    work_.notify_one();
    return ticket;
}

void HelperThread::wait(Ticket ticket) {
    std::unique_lock<std::mutex> lock(mutex_);
    if (ticket == 0 || ticket > submitted_)
        throw std::logic_error("HelperThread::wait: ticket " + std::to_string(ticket) + " was never handed out (" +
                               std::to_string(submitted_) + " so far)");
    done_.wait(lock, [&] { return finished_ >= ticket; });
    if (const auto it = errors_.find(ticket); it != errors_.end()) {
        const std::exception_ptr error = it->second;
        errors_.erase(it);
        std::rethrow_exception(error);
    }
}

void HelperThread::wait_all() {
    std::unique_lock<std::mutex> lock(mutex_);
    done_.wait(lock, [&] { return finished_ >= submitted_; });
}

uint64_t HelperThread::jobs_run() {
    std::lock_guard<std::mutex> lock(mutex_);
    return finished_;
}

void HelperThread::loop() {
    std::unique_lock<std::mutex> lock(mutex_);
    for (;;) {
        work_.wait(lock, [&] { return stop_ || !jobs_.empty(); });
        if (jobs_.empty()) return;  // stopping, and every job has run
        std::function<void()> job = std::move(jobs_.front());
        jobs_.pop_front();
        lock.unlock();
        std::exception_ptr error;
        try {
            job();
        } catch (...) {
            error = std::current_exception();
        }
        lock.lock();
        ++finished_;
        if (error) errors_[finished_] = error;  // jobs finish in ticket order
        done_.notify_all();
    }
}

}  // namespace kpu::model
