#include "sc_main/trace.h"

#include <fstream>
#include <map>
#include <stdexcept>

#include <nlohmann/json.hpp>

namespace kpu::cli {

namespace {

const char* kind_name(compiler::DfxOpKind kind) {
    switch (kind) {
        case compiler::DfxOpKind::Load: return "LOAD";
        case compiler::DfxOpKind::Move: return "MOVE";
        case compiler::DfxOpKind::Store: return "STORE";
        case compiler::DfxOpKind::Matmul: return "MATMUL_TILE";
        case compiler::DfxOpKind::Drain: return "DRAIN";
    }
    return "?";
}

}  // namespace

void write_trace(const RunReport& report, const compiler::BoundProgram& bound, const compiler::Program& program,
                 const std::string& path) {
    using nlohmann::json;
    // What each DFX op was (the bound ops point back at them).
    struct Info {
        compiler::DfxOpKind kind;
        uint32_t task, tensor;
        uint64_t row, col, k_first;
    };
    std::map<uint32_t, Info> dfx;
    for (const auto& op : bound.ops) dfx[op.dfx_op];
    compiler::for_each_op(program, [&](const compiler::DfxOp& d) {
        auto it = dfx.find(d.id);
        if (it != dfx.end()) it->second = {d.kind, d.task, d.tensor, d.row, d.col, d.k_first};
    });

    json events = json::array();
    // Processes: pid 0 the chip (DMA engines), pid 1 + t compute tile t; one thread per engine.
    std::map<std::string, std::pair<int, int>> track;  // scope -> (pid, tid)
    std::map<int, int> threads;
    for (const auto& e : report.engines) {
        const bool on_tile = e.scope.rfind("tile_", 0) == 0;
        const int pid = on_tile ? 1 + std::stoi(e.scope.substr(5)) : 0;
        const int tid = threads[pid]++;
        track[e.scope] = {pid, tid};
        if (tid == 0)
            events.push_back({{"ph", "M"}, {"name", "process_name"}, {"pid", pid}, {"tid", 0},
                              {"args", {{"name", on_tile ? "kpu." + e.scope.substr(0, e.scope.find('.')) : "kpu"}}}});
        events.push_back({{"ph", "M"}, {"name", "thread_name"}, {"pid", pid}, {"tid", tid}, {"args", {{"name", e.scope}}}});
        events.push_back({{"ph", "M"}, {"name", "process_sort_index"}, {"pid", pid}, {"tid", tid}, {"args", {{"sort_index", pid}}}});
    }
    const auto& tensors = program.graph.tensors();
    for (const auto& a : report.ops) {
        const compiler::BoundOp& op = bound.ops[a.id];
        const Info& info = dfx.at(op.dfx_op);
        const auto [pid, tid] = track.at(report.engines[a.engine].scope);
        json args = {{"op", a.id}, {"dfx_op", op.dfx_op}, {"task", info.task},
                     {"queued_us", double(a.start - a.dispatched) * 1e-6}};
        std::string name = kind_name(info.kind);
        if (op.kind == compiler::BoundOp::Kind::Move) {
            const std::string& tensor = tensors.at(info.tensor).name;
            name += " " + tensor;
            args["tensor"] = tensor;
            args["bytes"] = a.bytes;
            args["row"] = info.row;
            args["col"] = info.col;
        } else {
            args["row"] = info.row;
            args["col"] = info.col;
            if (op.kind == compiler::BoundOp::Kind::Matmul) {
                args["k"] = info.k_first;
                args["m"] = op.matmul.m, args["n"] = op.matmul.n, args["k_len"] = op.matmul.k;
                args["accumulate"] = op.matmul.accumulate;
                if (op.matmul.load_c) args["load_c"] = true;
            }
        }
        events.push_back({{"ph", "X"},
                          {"name", name},
                          {"cat", report.engines[a.engine].kind},
                          {"pid", pid},
                          {"tid", tid},
                          {"ts", double(a.start) * 1e-6},  // trace-event times are microseconds
                          {"dur", double(a.end - a.start) * 1e-6},
                          {"args", args}});
    }
    std::ofstream out(path);
    if (!out) throw std::runtime_error(path + ": cannot write trace file");
    out << json{{"traceEvents", events}, {"displayTimeUnit", "ns"},
                {"otherData", {{"program", report.program}, {"config", report.config}}}}
               .dump()
        << "\n";
    if (!out) throw std::runtime_error(path + ": write failed");
}

}  // namespace kpu::cli
