// The fabrics' helper thread: jobs run in submission order, wait() returns only once its job
// (and every earlier one) has run, a job's exception comes back at wait(), and destruction
// runs what is still queued.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <stdexcept>
#include <thread>
#include <vector>

#include "models/helper_thread.h"

namespace kpu::model {
namespace {

TEST(HelperThread, RunsJobsInOrderAndWaitSeesTheirEffects) {
    HelperThread worker;
    std::vector<int> order;  // written by the worker only, read after wait()
    std::atomic<bool> release{false};
    // The first job holds the worker until released, so the others queue behind it.
    const auto first = worker.submit([&] {
        while (!release) std::this_thread::sleep_for(std::chrono::milliseconds(1));
        order.push_back(0);
    });
    std::vector<HelperThread::Ticket> tickets{first};
    for (int i = 1; i < 50; ++i) tickets.push_back(worker.submit([&order, i] { order.push_back(i); }));
    release = true;
    worker.wait(tickets[10]);
    ASSERT_GE(order.size(), 11u);
    for (int i = 0; i <= 10; ++i) EXPECT_EQ(order[size_t(i)], i);
    worker.wait(tickets.back());
    ASSERT_EQ(order.size(), 50u);
    for (int i = 0; i < 50; ++i) EXPECT_EQ(order[size_t(i)], i);
}

TEST(HelperThread, AJobsExceptionComesBackAtItsOwnWaitOnly) {
    HelperThread worker;
    int after = 0;
    const auto before = worker.submit([] {});
    const auto bad = worker.submit([] { throw std::runtime_error("kernel failed"); });
    const auto good = worker.submit([&] { after = 7; });
    worker.wait(good);  // a later job: its wait does not see the earlier one's exception
    EXPECT_EQ(after, 7);
    EXPECT_NO_THROW(worker.wait(before));
    EXPECT_THROW(worker.wait(bad), std::runtime_error);
    EXPECT_NO_THROW(worker.wait(bad)) << "rethrown once";
    EXPECT_EQ(worker.jobs_run(), 3u);
    EXPECT_THROW(worker.wait(4), std::logic_error);
}

TEST(HelperThread, DestructionRunsTheJobsStillQueued) {
    std::atomic<int> ran{0};
    {
        HelperThread worker;
        for (int i = 0; i < 20; ++i) worker.submit([&] {
                std::this_thread::sleep_for(std::chrono::microseconds(200));
                ++ran;
            });
    }
    EXPECT_EQ(ran, 20);
}

}  // namespace
}  // namespace kpu::model
