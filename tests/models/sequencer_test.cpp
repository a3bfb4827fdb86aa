#include "models/sequencer.h"

#include <deque>
#include <functional>
#include <map>
#include <memory>

#include <gtest/gtest.h>

namespace kpu::model {
namespace {

using compiler::BoundOp;
using compiler::BoundProgram;
using compiler::EngineKind;
using sc_core::SC_NS;
using sc_core::sc_time;

/// An engine that takes `latency` per op, runs its queue in order and holds `depth` ops.
struct FakeEngine : sc_core::sc_module {
    std::deque<uint32_t> queue;
    size_t depth;
    sc_time latency;
    bool fail_next = false;
    bool hang = false;
    sc_core::sc_event queued;
    Sequencer* sequencer = nullptr;

    FakeEngine(sc_core::sc_module_name n, size_t d, sc_time l) : sc_module(n), depth(d), latency(l) {
        SC_HAS_PROCESS(FakeEngine);
        SC_THREAD(run);
    }
    bool submit(uint32_t id) {
        if (queue.size() >= depth) return false;
        queue.push_back(id);
        queued.notify(sc_core::SC_ZERO_TIME);
        return true;
    }
    void run() {
        for (;;) {
            while (queue.empty()) wait(queued);
            if (hang) wait();  // never completes
            wait(latency);
            const uint32_t id = queue.front();
            queue.pop_front();
            sequencer->complete(id, !fail_next);
        }
    }
};

BoundOp op(uint32_t id, EngineKind kind, std::vector<uint32_t> deps, uint32_t tile = 0, uint32_t unit = 0) {
    BoundOp o;
    o.id = id, o.engine = kind, o.tile = tile, o.unit = unit, o.deps = std::move(deps);
    return o;
}

struct Bench : sc_core::sc_module {
    std::map<EngineKind, std::unique_ptr<FakeEngine>> engines;
    Sequencer sequencer;

    Bench(sc_core::sc_module_name n, size_t depth)
        : sc_module(n),
          sequencer("sequencer", [this](const BoundOp& o) { return engines.at(o.engine)->submit(o.id); }) {
        const std::pair<EngineKind, int> latencies[] = {
            {EngineKind::Dma, 10}, {EngineKind::BlockMover, 5}, {EngineKind::Streamer, 7}, {EngineKind::Fabric, 3},
            {EngineKind::Vector, 4}};
        for (auto [kind, ns] : latencies) {
            engines[kind] = std::make_unique<FakeEngine>(("engine_" + std::to_string(int(kind))).c_str(), depth,
                                                         sc_time(ns, SC_NS));
            engines[kind]->sequencer = &sequencer;
        }
    }
};

TEST(Sequencer, DispatchesEachOpWhenItsDependenciesComplete) {
    Bench bench("bench", 4);
    BoundProgram p;
    // diamond: dma -> (block mover, streamer) -> fabric; a second dma op runs behind the first
    p.ops = {op(0, EngineKind::Dma, {}), op(1, EngineKind::BlockMover, {0}), op(2, EngineKind::Streamer, {0}),
             op(3, EngineKind::Fabric, {1, 2}), op(4, EngineKind::Dma, {})};
    bench.sequencer.start(p);
    sc_core::sc_start();
    ASSERT_TRUE(bench.sequencer.succeeded()) << bench.sequencer.error();
    const auto& r = bench.sequencer.records();
    EXPECT_EQ(r[0].completed, sc_time(10, SC_NS));
    EXPECT_EQ(r[4].completed, sc_time(20, SC_NS)) << "same engine: in order behind op 0";
    EXPECT_EQ(r[1].dispatched, sc_time(10, SC_NS));
    EXPECT_EQ(r[1].completed, sc_time(15, SC_NS));
    EXPECT_EQ(r[2].completed, sc_time(17, SC_NS)) << "parallel with op 1 on another engine";
    EXPECT_EQ(r[3].dispatched, sc_time(17, SC_NS)) << "waits for the later of its two deps";
    EXPECT_EQ(r[3].completed, sc_time(20, SC_NS));
    EXPECT_EQ(bench.sequencer.finished_at(), sc_time(20, SC_NS));
    EXPECT_EQ(bench.sequencer.stuck_report(), "");
    const Sequencer::Progress done = bench.sequencer.progress();  // what kpu-sim --progress prints
    EXPECT_EQ(done.completed, 5u);
    EXPECT_EQ(done.total, 5u);
    EXPECT_DOUBLE_EQ(done.simulated_s, 20e-9);
}

// The progress counters while a program runs: every op's completion counts at once, with
// the simulated time since START (the sequencer starts at 5 ns here).
TEST(Sequencer, ProgressCountsCompletionsAsTheyHappen) {
    Bench bench("bench", 4);
    BoundProgram p;
    for (uint32_t i = 0; i < 3; ++i) p.ops.push_back(op(i, EngineKind::Dma, {}));  // 10 ns each, in turn
    std::vector<Sequencer::Progress> seen;
    struct Probe : sc_core::sc_module {
        Probe(sc_core::sc_module_name n, std::function<void()> body) : sc_module(n), body_(std::move(body)) {
            SC_HAS_PROCESS(Probe);
            SC_THREAD(run);
        }
        void run() { body_(); }
        std::function<void()> body_;
    } probe("probe", [&] {
        seen.push_back(bench.sequencer.progress());  // before START
        wait(5, SC_NS);
        bench.sequencer.start(p);
        for (int t : {1, 10, 10, 10}) {  // at 6, 16, 26, 36 ns: 0, 1, 2, 3 done
            wait(t, SC_NS);
            seen.push_back(bench.sequencer.progress());
        }
    });
    sc_core::sc_start();
    ASSERT_EQ(seen.size(), 5u);
    EXPECT_EQ(seen[0].total, 0u);
    for (uint64_t i = 1; i < 5; ++i) {
        EXPECT_EQ(seen[i].total, 3u);
        EXPECT_EQ(seen[i].completed, i - 1) << i;
        EXPECT_DOUBLE_EQ(seen[i].simulated_s, double(i - 1) * 10e-9) << i;
    }
}

TEST(Sequencer, RetriesOpsAFullEngineRefused) {
    Bench bench("bench", 1);
    BoundProgram p;
    for (uint32_t i = 0; i < 5; ++i) p.ops.push_back(op(i, EngineKind::Dma, {}));
    bench.sequencer.start(p);
    sc_core::sc_start();
    ASSERT_TRUE(bench.sequencer.succeeded());
    for (uint32_t i = 0; i < 5; ++i) EXPECT_EQ(bench.sequencer.records()[i].completed, sc_time(10 * (i + 1), SC_NS));
}

TEST(Sequencer, AFailedOpStopsTheProgramAndIsNamed) {
    Bench bench("bench", 4);
    bench.engines[EngineKind::BlockMover]->fail_next = true;
    BoundProgram p;
    p.ops = {op(0, EngineKind::Dma, {}), op(1, EngineKind::BlockMover, {0}, 2, 1), op(2, EngineKind::Fabric, {1})};
    bench.sequencer.start(p);
    sc_core::sc_start();
    EXPECT_FALSE(bench.sequencer.succeeded());
    EXPECT_FALSE(bench.sequencer.running());
    EXPECT_EQ(bench.sequencer.error(), "op 1 on tile_2.block_mover_1 failed");
    EXPECT_EQ(bench.sequencer.records()[2].state, Sequencer::OpRecord::State::Waiting) << "never dispatched";
}

TEST(Sequencer, ReportsStuckOpsAndWhatTheyWaitFor) {
    Bench bench("bench", 4);
    bench.engines[EngineKind::Streamer]->hang = true;
    BoundProgram p;
    p.ops = {op(0, EngineKind::Dma, {}), op(1, EngineKind::Streamer, {0}, 0, 3), op(2, EngineKind::Fabric, {0, 1})};
    bench.sequencer.start(p);
    sc_core::sc_start();
    EXPECT_TRUE(bench.sequencer.running());
    EXPECT_EQ(bench.sequencer.stuck_report(),
              "2 of 3 ops did not complete; op 1 on tile_0.streamer_3 was dispatched and never completed; "
              "op 2 on tile_0.fabric waits for op 1");
}

// Nothing in flight, nothing ready, ops left: the program ends at once as stuck (the host's
// ERROR 4), with the report, instead of leaving a virtual platform whose other processes
// keep the simulation going waiting for an interrupt that never comes.
TEST(Sequencer, OpsThatCanNeverRunEndTheProgramAsStuck) {
    Bench bench("bench", 4);
    BoundProgram p;
    p.ops = {op(0, EngineKind::Dma, {}), op(1, EngineKind::Fabric, {0, 2}), op(2, EngineKind::Streamer, {1})};
    bench.sequencer.start(p);
    sc_core::sc_start();
    EXPECT_FALSE(bench.sequencer.running());
    EXPECT_FALSE(bench.sequencer.succeeded());
    EXPECT_TRUE(bench.sequencer.stuck());
    EXPECT_EQ(bench.sequencer.error(), "stuck: 2 of 3 ops did not complete; op 1 on tile_0.fabric waits for op 2; "
                                       "op 2 on tile_0.streamer_0 waits for op 1");
    EXPECT_EQ(bench.sequencer.finished_at(), sc_time(10, SC_NS)) << "right after op 0, the last that could run";
}

// The vector engine of a tile is an engine of its own: it runs beside the fabric of the same
// tile, and messages name it like the fabric (one per tile, no unit).
TEST(Sequencer, VectorOpsRunBesideTheFabricOfTheirTile) {
    Bench bench("bench", 4);
    bench.engines[EngineKind::Vector]->fail_next = true;
    BoundProgram p;
    p.ops = {op(0, EngineKind::Fabric, {}, 2), op(1, EngineKind::Vector, {}, 2), op(2, EngineKind::Dma, {0, 1})};
    bench.sequencer.start(p);
    sc_core::sc_start();
    const auto& r = bench.sequencer.records();
    EXPECT_EQ(r[0].dispatched, sc_time(0, SC_NS));
    EXPECT_EQ(r[1].dispatched, sc_time(0, SC_NS)) << "not queued behind the fabric";
    EXPECT_EQ(r[1].completed, sc_time(4, SC_NS));
    EXPECT_EQ(bench.sequencer.error(), "op 1 on tile_2.vector failed");
}

TEST(Sequencer, EmptyProgramFinishesAtOnce) {
    Bench bench("bench", 4);
    BoundProgram p;
    bench.sequencer.start(p);
    sc_core::sc_start();
    EXPECT_TRUE(bench.sequencer.succeeded());
}

}  // namespace
}  // namespace kpu::model
