// Helpers of the end-to-end tests: compile a graph for a config, run it on a KpuPlatform
// driven by the HostDriver (the kpu-sim path), and compare with the independent reference.
#pragma once

#include <string>

#include <gtest/gtest.h>

#include "compiler/generate.h"
#include "compiler/graph_json.h"
#include "sc_main/reference.h"
#include "sc_main/simulate.h"
#include "tests/support/config.h"
#include "tests/support/graphs.h"

namespace kpu::test {

inline compiler::Program compile(const std::string& graph_json, const hw::Config& target,
                                  compiler::Dataflow dataflow = compiler::Dataflow::OutputStationary) {
    compiler::CompileOptions options;
    options.dataflow = dataflow;
    return compiler::compile(compiler::parse_graph(graph_json, "test graph"), target, options);
}

/// Checks every output of a finished session against the reference; returns the cycles.
inline void expect_outputs_match_reference(const compiler::Program& program, const cli::Prepared& prepared,
                                           const cli::Session& session) {
    ASSERT_EQ(session.failure(), "");
    const auto reference = cli::run_reference(program.graph, prepared.inputs);
    const auto outputs = session.outputs();
    ASSERT_FALSE(outputs.empty());
    for (const auto& tensor : prepared.bound.tensors) {
        if (tensor.role != "output") continue;
        const cli::CheckResult r = cli::check_tensor(outputs.at(tensor.name), reference.at(tensor.name), tensor.shape);
        EXPECT_TRUE(r.ok) << tensor.name << ": " << r.mismatches << " mismatches; worst at flat index "
                          << r.worst_index << ": simulated " << r.got << ", reference " << r.expected;
    }
}

/// Compiles for `target`, runs on `run_on` (same config by default) and checks the outputs.
inline uint64_t run_and_check(const std::string& graph_json, const hw::Config& target,
                              const hw::Config* run_on = nullptr,
                              compiler::Dataflow dataflow = compiler::Dataflow::OutputStationary) {
    const hw::Config& device = run_on ? *run_on : target;
    const compiler::Program program = compile(graph_json, target, dataflow);
    cli::Prepared prepared = cli::prepare(device, program, "", 7);
    // One simulation per test process; the session lives until the process ends.
    auto* session = new cli::Session;
    session->job = prepared.job;
    session->build(device);
    sc_core::sc_start();
    expect_outputs_match_reference(program, prepared, *session);
    EXPECT_TRUE(session->kpu->sequencer().succeeded());
    return session->host->result().cycles;
}

}  // namespace kpu::test
