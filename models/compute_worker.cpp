#include "models/compute_worker.h"

#include <stdexcept>
#include <string>

namespace kpu::model {

ComputeWorker::ComputeWorker() : thread_([this] { loop(); }) {}

ComputeWorker::~ComputeWorker() {
    {
        std::lock_guard<std::mutex> lock(mutex_);
        stop_ = true;
    }
    work_.notify_one();
    thread_.join();
}

ComputeWorker::Ticket ComputeWorker::submit(std::function<void()> job) {
    Ticket ticket;
    {
        std::lock_guard<std::mutex> lock(mutex_);
        jobs_.push_back(std::move(job));
        ticket = ++submitted_;
    }
    work_.notify_one();
    return ticket;
}

void ComputeWorker::wait(Ticket ticket) {
    std::unique_lock<std::mutex> lock(mutex_);
    if (ticket == 0 || ticket > submitted_)
        throw std::logic_error("ComputeWorker::wait: ticket " + std::to_string(ticket) + " was never handed out (" +
                               std::to_string(submitted_) + " so far)");
    done_.wait(lock, [&] { return finished_ >= ticket; });
    if (const auto it = errors_.find(ticket); it != errors_.end()) {
        const std::exception_ptr error = it->second;
        errors_.erase(it);
        std::rethrow_exception(error);
    }
}

uint64_t ComputeWorker::jobs_run() {
    std::lock_guard<std::mutex> lock(mutex_);
    return finished_;
}

void ComputeWorker::loop() {
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
