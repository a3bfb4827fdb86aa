// The platform's helper threads: jobs run one at a time in submission order (on the helper,
// or on a waiting thread that finds the next one not started), wait() returns only once its
// job (and every earlier one) has run, a job's exception comes back at wait(), and
// destruction runs what is still queued.
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
    HelperThread helper;
    // Job i writes slot order[n++]: the jobs after the one waited for go on writing other
    // slots while the test reads the first ones.
    std::vector<int> order(50, -1);
    std::atomic<int> n{0};
    std::atomic<bool> release{false};
    // The first job holds the helper until released, so the others queue behind it.
    const auto first = helper.submit([&] {
        while (!release) std::this_thread::sleep_for(std::chrono::milliseconds(1));
        order[size_t(n++)] = 0;
    });
    std::vector<HelperThread::Ticket> tickets{first};
    for (int i = 1; i < 50; ++i) tickets.push_back(helper.submit([&order, &n, i] { order[size_t(n++)] = i; }));
    release = true;
    helper.wait(tickets[10]);
    ASSERT_GE(n.load(), 11);
    for (int i = 0; i <= 10; ++i) EXPECT_EQ(order[size_t(i)], i);
    helper.wait(tickets.back());
    ASSERT_EQ(n.load(), 50);
    for (int i = 0; i < 50; ++i) EXPECT_EQ(order[size_t(i)], i);
}

TEST(HelperThread, AJobsExceptionComesBackAtItsOwnWaitOnly) {
    HelperThread helper;
    int after = 0;
    const auto before = helper.submit([] {});
    const auto bad = helper.submit([] { throw std::runtime_error("kernel failed"); });
    const auto good = helper.submit([&] { after = 7; });
    helper.wait(good);  // a later job: its wait does not see the earlier one's exception
    EXPECT_EQ(after, 7);
    EXPECT_NO_THROW(helper.wait(before));
    EXPECT_THROW(helper.wait(bad), std::runtime_error);
    EXPECT_NO_THROW(helper.wait(bad)) << "rethrown once";
    EXPECT_EQ(helper.jobs_run(), 3u);
    EXPECT_THROW(helper.wait(4), std::logic_error);
}

// Submit-then-wait in quick succession, as the movers do: the helper and the waiting thread
// both run jobs, and still never two at once nor out of order.
TEST(HelperThread, JobsNeverOverlapAndRunInOrderWhicheverThreadRunsThem) {
    HelperThread helper;
    std::atomic<int> inside{0};
    std::atomic<bool> overlapped{false};
    std::vector<int> order;  // appended by one job at a time (what this test checks)
    int next = 0;
    auto job = [&](int i) {
        return [&, i] {
            if (inside.fetch_add(1) != 0) overlapped = true;
            order.push_back(i);
            const auto until = std::chrono::steady_clock::now() + std::chrono::microseconds(5);
            while (std::chrono::steady_clock::now() < until) {
            }
            inside.fetch_sub(1);
        };
    };
    for (int round = 0; round < 3000; ++round) {
        std::vector<HelperThread::Ticket> tickets;
        for (int j = 0; j <= round % 3; ++j) tickets.push_back(helper.submit(job(next++)));
        helper.wait(round % 2 ? tickets.front() : tickets.back());
    }
    helper.wait_all();
    EXPECT_FALSE(overlapped);
    ASSERT_EQ(order.size(), size_t(next));
    for (int i = 0; i < next; ++i) ASSERT_EQ(order[size_t(i)], i);
    EXPECT_EQ(helper.jobs_run(), uint64_t(next));
    // The waiting thread finds the next job not started in nearly every round (the helper
    // takes microseconds to wake); one round in 3000 is all this asks.
    EXPECT_GT(helper.jobs_run_by_waiters(), 0u);
}

/// Waits (up to 20 s) until `done` holds; false if it never did.
template <typename Done>
bool eventually(Done done) {
    const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(20);
    while (!done() && std::chrono::steady_clock::now() < until) std::this_thread::sleep_for(std::chrono::milliseconds(1));
    return done();
}

// A sleeping helper is woken only once the queued jobs weigh enough; lighter ones are run by
// the thread that waits for them.
TEST(HelperThread, ASleepingHelperIsWokenOnlyForEnoughWeight) {
    HelperThread helper(100);
    ASSERT_TRUE(eventually([&] { return helper.asleep(); }));
    int light = 0;
    const auto first = helper.submit([&] { light = 1; }, 60);
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    EXPECT_EQ(helper.jobs_run(), 0u) << "woken for 60 of 100";
    EXPECT_TRUE(helper.asleep());
    helper.wait(first);
    EXPECT_EQ(light, 1);
    EXPECT_EQ(helper.jobs_run_by_waiters(), 1u);
    ASSERT_TRUE(eventually([&] { return helper.asleep(); }));
    std::atomic<int> heavy{0};
    helper.submit([&] { heavy = 1; }, 40);
    helper.submit([&] { heavy = 2; }, 60);  // 100 queued: wake
    EXPECT_TRUE(eventually([&] { return helper.jobs_run() == 3; })) << "the helper ran the jobs nobody waited for";
    EXPECT_EQ(heavy, 2);
    EXPECT_EQ(helper.jobs_run_by_waiters(), 1u);
}

TEST(HelperThread, DestructionRunsTheJobsStillQueued) {
    std::atomic<int> ran{0};
    {
        HelperThread helper;
        for (int i = 0; i < 20; ++i) helper.submit([&] {
                std::this_thread::sleep_for(std::chrono::microseconds(200));
                ++ran;
            });
    }
    EXPECT_EQ(ran, 20);
}

}  // namespace
}  // namespace kpu::model
