#include "sc_main/trace.h"

#include <algorithm>
#include <fstream>
#include <map>
#include <stdexcept>
#include <tuple>
#include <vector>

#include <nlohmann/json.hpp>

#include "hardware/output_file.h"

namespace kpu::cli {

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

    // Lanes: an engine pipelines (a DMA engine or block mover has several ops in flight), but
    // complete ("X") slices on one thread must nest. So each engine gets as many threads
    // (lanes) as it has ops in flight at once: ops by start time, each on the first lane free
    // by then (interval partitioning: the fewest lanes, and no two slices on one overlap).
    std::vector<uint32_t> lane(report.ops.size());
    std::vector<uint32_t> lanes(report.engines.size());  // per engine
    {
        std::vector<std::vector<size_t>> by_engine(report.engines.size());
        for (size_t i = 0; i < report.ops.size(); ++i) by_engine[report.ops[i].engine].push_back(i);
        for (size_t e = 0; e < by_engine.size(); ++e) {
            auto& ops = by_engine[e];
            std::sort(ops.begin(), ops.end(), [&](size_t a, size_t b) {
                const OpActivity &x = report.ops[a], &y = report.ops[b];
                return std::tie(x.start, x.id) < std::tie(y.start, y.id);
            });
            std::vector<uint64_t> free_at;  // per lane: the end of its last op
            for (size_t i : ops) {
                const OpActivity& a = report.ops[i];
                uint32_t l = 0;
                while (l < free_at.size() && free_at[l] > a.start) ++l;
                if (l == free_at.size()) free_at.push_back(0);
                free_at[l] = a.end;
                lane[i] = l;
            }
            lanes[e] = uint32_t(std::max<size_t>(free_at.size(), 1));
        }
    }

    json events = json::array();
    // Processes: pid 0 the chip (DMA engines), pid 1 + t compute tile t; one thread per engine
    // lane, named after the engine ("tile_0.bm_0", then "tile_0.bm_0 #2", ...) and sorted
    // next to each other.
    std::vector<std::pair<int, int>> track(report.engines.size());  // engine -> (pid, tid of its lane 0)
    std::map<int, int> threads;
    for (size_t i = 0; i < report.engines.size(); ++i) {
        const EngineActivity& e = report.engines[i];
        const bool on_tile = e.scope.rfind("tile_", 0) == 0;
        const int pid = on_tile ? 1 + std::stoi(e.scope.substr(5)) : 0;
        const int first = threads[pid];
        threads[pid] += int(lanes[i]);
        track[i] = {pid, first};
        if (first == 0)
            events.push_back({{"ph", "M"}, {"name", "process_name"}, {"pid", pid}, {"tid", 0},
                              {"args", {{"name", on_tile ? "kpu." + e.scope.substr(0, e.scope.find('.')) : "kpu"}}}});
        for (uint32_t l = 0; l < lanes[i]; ++l) {
            const int tid = first + int(l);
            const std::string name = l == 0 ? e.scope : e.scope + " #" + std::to_string(l + 1);
            events.push_back({{"ph", "M"}, {"name", "thread_name"}, {"pid", pid}, {"tid", tid}, {"args", {{"name", name}}}});
            events.push_back({{"ph", "M"}, {"name", "thread_sort_index"}, {"pid", pid}, {"tid", tid}, {"args", {{"sort_index", tid}}}});
        }
        events.push_back({{"ph", "M"}, {"name", "process_sort_index"}, {"pid", pid}, {"tid", first}, {"args", {{"sort_index", pid}}}});
    }
    const auto& tensors = program.graph.tensors();
    for (size_t i = 0; i < report.ops.size(); ++i) {
        const OpActivity& a = report.ops[i];
        const compiler::BoundOp& op = bound.ops[a.id];
        const Info& info = dfx.at(op.dfx_op);
        const auto [pid, first] = track.at(a.engine);
        const int tid = first + int(lane[i]);
        json args = {{"op", a.id}, {"dfx_op", op.dfx_op}, {"task", info.task},
                     {"queued_us", double(a.start - a.dispatched) * 1e-6}};
        // The graph op the slice belongs to, and the source ops a pass fused into it.
        const compiler::Op& graph_op = program.graph.ops().at(program.kernels.at(program.tasks.at(info.task).kernel).op);
        args["graph_op"] = graph_op.name;
        if (!graph_op.fused_with.empty()) args["fused_with"] = graph_op.fused_with;
        std::string name = to_string(info.kind);
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
                args["type"] = hw::to_string(op.matmul.type);
                if (op.matmul.type == hw::DType::Int8) args["a_zero"] = op.matmul.a_zero, args["b_zero"] = op.matmul.b_zero;
                if (op.matmul.load_c) args["load_c"] = true;
            } else if (op.kind == compiler::BoundOp::Kind::Drain) {
                args["m"] = op.drain.m, args["n"] = op.drain.n;
                if (op.drain.has_bias) args["bias"] = true;
                if (op.drain.alpha != 1.0f) args["alpha"] = op.drain.alpha;
                if (op.drain.has_bias && op.drain.beta != 1.0f) args["beta"] = op.drain.beta;
                if (op.drain.has_scale) args["scale"] = true;
                if (op.drain.has_residual) args["residual"] = true;
                if (op.drain.out_type != hw::DType::Float32) args["out_type"] = hw::to_string(op.drain.out_type);
                if (op.drain.out_type == hw::DType::Int8) args["out_zero"] = op.drain.out_zero;
                if (op.drain.activation != compiler::Activation::None)
                    args["activation"] = to_string(op.drain.activation);
            } else if (op.kind == compiler::BoundOp::Kind::Vector) {
                // The function and its tile, so the slice's duration can be checked against
                // hw::vector_cycles.
                const hw::VectorCommand& v = op.vector;
                name += std::string(" ") + to_string(v.function);
                args["function"] = to_string(v.function);
                args["rows"] = v.rows, args["cols"] = v.cols;
                if (v.causal) args["causal_offset"] = v.causal_offset;
                if (v.a.encoding.type != hw::DType::Float32) args["type"] = hw::to_string(v.a.encoding.type);
                if (hw::traits_of(v.function).shape == hw::VectorShape::Window)  // the window's cost terms
                    args["out"] = hw::y_cols(v), args["taps"] = v.window.kernel_h * v.window.kernel_w;
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
    hw::OutputFile file(path);
    if (!file.is_open()) throw std::runtime_error(path + ": cannot write trace file");
    file.stream() << json{{"traceEvents", events}, {"displayTimeUnit", "ns"},
                {"otherData", {{"program", report.program}, {"config", report.config}}}}
               .dump()
        << "\n";
    if (const std::string problem = file.close(); !problem.empty()) throw std::runtime_error(path + ": " + problem);
}

}  // namespace kpu::cli
