#include "models/compute_worker.h"

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
    done_.wait(lock, [&] { return finished_ >= ticket; });
    if (error_) std::rethrow_exception(std::exchange(error_, nullptr));
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
        if (error && !error_) error_ = error;
        ++finished_;
        done_.notify_all();
    }
}

}  // namespace kpu::model
