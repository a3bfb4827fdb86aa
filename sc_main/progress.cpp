#include "sc_main/progress.h"

#include <chrono>
#include <iomanip>
#include <sstream>

namespace kpu::cli {

namespace {
std::string seconds_text(double s) {
    std::ostringstream text;
    text << std::setprecision(3);
    if (s < 1e-6)
        text << s * 1e9 << " ns";
    else if (s < 1e-3)
        text << s * 1e6 << " us";
    else if (s < 1)
        text << s * 1e3 << " ms";
    else
        text << s << " s";
    return text.str();
}
}  // namespace

std::string progress_line(const Progress& p, double wall_s) {
    std::ostringstream line;
    if (p.total == 0) {  // elaboration, the host loading inputs and the image, binding
        line << "kpu-sim: starting the program, " << std::fixed << std::setprecision(1) << wall_s << " s wall";
        return line.str();
    }
    const double share = 100.0 * double(p.completed) / double(p.total);
    line << "kpu-sim: " << std::fixed << std::setprecision(1) << share << " % of " << p.total << " ops, "
         << seconds_text(p.simulated_s) << " simulated, " << std::setprecision(1) << wall_s << " s wall";
    if (p.completed > 0 && p.completed < p.total) {
        const double left = wall_s * double(p.total - p.completed) / double(p.completed);
        if (left < 0.5)
            line << ", less than a second left";
        else
            line << ", about " << std::setprecision(0) << left << " s left";
    }
    return line.str();
}

ProgressReporter::ProgressReporter(std::function<Progress()> source, double interval_s, std::ostream& out,
                                   std::chrono::steady_clock::time_point start)
    : source_(std::move(source)), interval_s_(interval_s), out_(out), start_(start), thread_([this] { loop(); }) {}

ProgressReporter::~ProgressReporter() {
    {
        std::lock_guard<std::mutex> lock(mutex_);
        stop_ = true;
    }
    stop_cv_.notify_one();
    thread_.join();
}

void ProgressReporter::loop() {
    const auto interval =
        std::chrono::duration_cast<std::chrono::steady_clock::duration>(std::chrono::duration<double>(interval_s_));
    std::unique_lock<std::mutex> lock(mutex_);
    for (auto next = std::chrono::steady_clock::now() + interval;; next += interval) {
        if (stop_cv_.wait_until(lock, next, [&] { return stop_; })) return;
        lock.unlock();  // a slow stderr must not hold up the destructor's stop
        const double wall_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
        out_ << progress_line(source_(), wall_s) << std::endl;
        lock.lock();
    }
}

}  // namespace kpu::cli
