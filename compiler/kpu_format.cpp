#include "compiler/kpu_format.h"

#include <algorithm>
#include <cmath>
#include <fstream>
#include <iomanip>
#include <iterator>
#include <sstream>

#include <nlohmann/json.hpp>

#include "compiler/compile_error.h"
#include "compiler/flash_attention.h"
#include "compiler/depth_first.h"
#include "compiler/generate.h"
#include "compiler/graph_json.h"
#include "compiler/keep_in_l3.h"
#include "compiler/memory_plan.h"
#include "compiler/ops/op_schema.h"
#include "compiler/vector_op.h"
#include "hardware/json_reader.h"
#include "hardware/output_file.h"

namespace kpu::compiler {
namespace {

using json = nlohmann::json;
using hw::JsonReader;
using hw::show;

json hints_to_json(const Hints& h) {
    return {{"dram_read_bytes", h.dram_read_bytes},   {"dram_write_bytes", h.dram_write_bytes},
            {"macs", h.macs},                         {"compute_cycles", h.compute_cycles},
            {"estimated_cycles", h.estimated_cycles}, {"arithmetic_intensity", h.arithmetic_intensity}};
}

Hints read_hints(JsonReader& parent, const std::string& key) {
    JsonReader f = parent.object(key);
    Hints h;
    h.dram_read_bytes = f.uint("dram_read_bytes");
    h.dram_write_bytes = f.uint("dram_write_bytes");
    h.macs = f.uint("macs");
    h.compute_cycles = f.uint("compute_cycles");
    h.estimated_cycles = f.uint("estimated_cycles");
    h.arithmetic_intensity = f.as_number(f.field("arithmetic_intensity"), f.path_of("arithmetic_intensity"));
    f.finish();
    return h;
}

/// Compares stored hints with the ones the op stream implies (estimated_cycles is the
/// tiler's and cannot be recomputed without the config). arithmetic_intensity, a quotient,
/// need only agree to 1e-9 relative (another language's division may differ in the last
/// digit); it is then set to the op stream's value, so that reading is canonical.
void check_hints(const JsonReader& f, const std::string& path, Hints& stored, const Hints& actual) {
    auto same = [&](const char* name, uint64_t s, uint64_t a) {
        if (s != a)
            f.fail(path + "." + name, std::to_string(s) + " but the op stream gives " + std::to_string(a));
    };
    same("dram_read_bytes", stored.dram_read_bytes, actual.dram_read_bytes);
    same("dram_write_bytes", stored.dram_write_bytes, actual.dram_write_bytes);
    same("macs", stored.macs, actual.macs);
    same("compute_cycles", stored.compute_cycles, actual.compute_cycles);
    if (!(std::fabs(stored.arithmetic_intensity - actual.arithmetic_intensity) <=
          1e-9 * std::fabs(actual.arithmetic_intensity))) {
        std::ostringstream msg;
        msg << std::setprecision(17) << stored.arithmetic_intensity << " but the op stream gives "
            << actual.arithmetic_intensity << " (2 x macs / (dram_read_bytes + dram_write_bytes), to 1e-9)";
        f.fail(path + ".arithmetic_intensity", msg.str());
    }
    stored.arithmetic_intensity = actual.arithmetic_intensity;
}

std::pair<uint32_t, uint32_t> read_range(JsonReader& f, const std::string& key) {
    const json& range = f.array(key);
    if (range.size() != 2) f.fail(f.path_of(key), "expected [first, end], got " + show(range));
    const uint64_t a = f.as_uint(range[0], f.path_of(key) + "[0]"), b = f.as_uint(range[1], f.path_of(key) + "[1]");
    if (a >= b || b > UINT32_MAX) f.fail(f.path_of(key), "empty or invalid tile range " + show(range));
    return {uint32_t(a), uint32_t(b)};
}

void check_tasks(const JsonReader& root, Program& program) {
    const auto& tasks = program.tasks;
    // Cycles first (they make "later task" meaningless), found by depth-first search.
    depth_first_order(
        uint32_t(tasks.size()), [&](uint32_t t) -> const std::vector<uint32_t>& { return tasks[t].deps; },
        [&](const std::vector<uint32_t>& cycle) {
            std::string text;
            for (uint32_t t : cycle) text += (text.empty() ? "" : " -> ") + std::to_string(t);
            root.fail("tasks", "dependency cycle: " + text);
        });
    for (uint32_t t = 0; t < tasks.size(); ++t)
        for (size_t i = 0; i < tasks[t].deps.size(); ++i)
            if (tasks[t].deps[i] > t)
                root.fail("tasks[" + std::to_string(t) + "].deps[" + std::to_string(i) + "]",
                          "depends on later task " + std::to_string(tasks[t].deps[i]) +
                              " (tasks must be in dependency order)");
    // Every tile of every kernel covered exactly once.
    std::vector<std::vector<uint32_t>> tasks_of(program.kernels.size());
    for (uint32_t t = 0; t < tasks.size(); ++t) tasks_of[tasks[t].kernel].push_back(t);
    for (uint32_t k = 0; k < program.kernels.size(); ++k) {
        const Kernel& kr = program.kernels[k];
        const KernelDims mm = kernel_dims(program.graph, kr.op);
        const uint32_t Mt = tile_count(mm.m, kr.tile.tm);
        const uint32_t Nt = tile_count(mm.n, kr.tile.tn);
        const uint64_t grid = uint64_t(Mt) * Nt;
        // A batched matmul's tiles are (row, column) of each C matrix: "of matrix b" names it.
        const auto matrix = [&](uint64_t b) { return mm.batch > 1 ? " of matrix " + std::to_string(b) : std::string(); };
        std::vector<int64_t> owner(grid * mm.batch, -1);
        for (const uint32_t t : tasks_of[k]) {
            for (uint32_t r = tasks[t].r0; r < tasks[t].r1; ++r)
                for (uint32_t c = tasks[t].c0; c < tasks[t].c1; ++c) {
                    int64_t& o = owner[tasks[t].batch * grid + uint64_t(r) * Nt + c];
                    if (o >= 0)
                        root.fail("tasks[" + std::to_string(t) + "]", "tile (" + std::to_string(r) + ", " +
                                                                          std::to_string(c) + ")" + matrix(tasks[t].batch) +
                                                                          " of kernel " + std::to_string(k) +
                                                                          " is already covered by task " +
                                                                          std::to_string(o));
                    o = t;
                }
        }
        for (uint64_t i = 0; i < owner.size(); ++i)
            if (owner[i] < 0)
                root.fail("kernels[" + std::to_string(k) + "]", "tile (" + std::to_string(i % grid / Nt) + ", " +
                                                                   std::to_string(i % Nt) + ")" + matrix(i / grid) +
                                                                   " is covered by no task");
    }
    // Every producer of what a task loads must be a dependency.
    ProducerIndex producers(program);
    for (uint32_t t = 0; t < tasks.size(); producers.add(t), ++t) {
        std::vector<uint32_t> deps = tasks[t].deps;
        std::sort(deps.begin(), deps.end());
        for (uint32_t u : producers.producers(t))
            if (!std::binary_search(deps.begin(), deps.end(), u)) {
                const uint32_t written = program.graph.ops()[program.kernels[tasks[u].kernel].op].outputs.at(0);
                root.fail("tasks[" + std::to_string(t) + "].deps",
                          "missing task " + std::to_string(u) + ", which writes part of tensor '" +
                              program.graph.tensor(written).name + "' that this task reads");
            }
    }
}

/// The .kpu's "memory" keys and the MemoryEstimate fields they hold.
const std::pair<const char*, uint64_t MemoryEstimate::*> kMemoryFields[] = {
    {"granule", &MemoryEstimate::granule}, {"weights", &MemoryEstimate::weights},
    {"activations", &MemoryEstimate::activations}, {"peak_l3", &MemoryEstimate::l3},
    {"peak_l2", &MemoryEstimate::l2},      {"peak_l1", &MemoryEstimate::l1},
    {"peak_dram", &MemoryEstimate::dram}};

/// Whether a "memory" field is an SRAM mark: those come from binding the program on the config
/// it was compiled for (estimate_memory(program, config)), which a reader does not have.
bool is_sram_mark(uint64_t MemoryEstimate::*field) {
    return field == &MemoryEstimate::l3 || field == &MemoryEstimate::l2 || field == &MemoryEstimate::l1;
}

/// The stored memory estimate against the one the program implies (the plan is recomputed:
/// it is a pure function of the graph and the granule); "memory" without plan-memory among
/// the passes, or plan-memory without "memory", is refused.
void check_memory(const JsonReader& f, const Program& program) {
    const bool planned = std::find(program.passes.begin(), program.passes.end(), Pass::PlanMemory) != program.passes.end();
    if (planned != program.memory.has_value())
        f.fail("memory", planned ? "missing (the program ran plan-memory, whose estimate it records)"
                                 : "present but plan-memory is not among the passes");
    if (!planned) return;
    const MemoryEstimate actual = estimate_memory(program, program.memory->granule);
    for (const auto& [name, field] : kMemoryFields)
        if (!is_sram_mark(field) && program.memory.value().*field != actual.*field)
            f.fail(std::string("memory.") + name, std::to_string(program.memory.value().*field) +
                                                      " but the program's memory plan gives " +
                                                      std::to_string(actual.*field));
    // Every dependency reuse needs must be there (out of order, a missing one corrupts data).
    Program with = program;
    add_reuse_deps(with, program_memory_plan(program, program.memory->granule));
    for (uint32_t t = 0; t < program.tasks.size(); ++t) {
        if (with.tasks[t].deps == program.tasks[t].deps) continue;
        std::vector<uint32_t> need = with.tasks[t].deps, have = program.tasks[t].deps, missing;
        std::sort(need.begin(), need.end());
        std::sort(have.begin(), have.end());
        std::set_difference(need.begin(), need.end(), have.begin(), have.end(), std::back_inserter(missing));
        if (!missing.empty())
            f.fail("tasks[" + std::to_string(t) + "].deps",
                   "missing task " + std::to_string(missing.at(0)) +
                       ", which accesses a tensor whose DRAM this task's output reuses (plan-memory)");
    }
}

/// keep-in-l3 among the passes exactly when "memory" records the L3 capacity it planned for,
/// and then some tensor fits (the pass runs only where one does).
void check_l3_residency(const JsonReader& f, const Program& program) {
    const bool kept = std::find(program.passes.begin(), program.passes.end(), Pass::KeepInL3) != program.passes.end();
    const uint64_t capacity = program.memory ? program.memory->l3_capacity : 0;
    if (kept != (capacity != 0))
        f.fail("memory.l3_capacity", kept ? "missing or 0 (the program ran keep-in-l3, which records the L3 it planned for)"
                                          : "present but keep-in-l3 is not among the passes");
    if (kept && program_l3_plan(program).count == 0)
        f.fail("memory.l3_capacity", std::to_string(capacity) + " bytes of L3 keep no tensor of the program (keep-in-l3)");
}

}  // namespace

std::string write_kpu(const Program& program) {
    json kernels = json::array();
    for (const Kernel& k : program.kernels)
        kernels.push_back({{"op", program.graph.ops()[k.op].name},
                           {"dataflow", to_string(k.dataflow)},
                           {"tile", k.tile.kc ? json{k.tile.tm, k.tile.tn, k.tile.tk, k.tile.kc}
                                                : json{k.tile.tm, k.tile.tn, k.tile.tk}},
                           {"hints", hints_to_json(k.hints)}});
    json tasks = json::array();
    for (const Task& t : program.tasks) {
        tasks.push_back({{"kernel", t.kernel}, {"rows", {t.r0, t.r1}}, {"cols", {t.c0, t.c1}}, {"deps", t.deps}});
        if (t.batch) tasks.back()["batch"] = t.batch;  // matrix 0 (every unbatched task) is implied
    }
    json target = {{"config", program.target.config},
                   {"fabric_rows", program.target.fabric_rows},
                   {"fabric_cols", program.target.fabric_cols},
                   {"compute_tiles", program.target.compute_tiles}};
    if (!program.target.overrides.empty()) target["overrides"] = program.target.overrides;
    json root = {{"format", "kpu"},
                 {"version", Program::kVersion},
                 {"target", std::move(target)},
                 {"graph", graph_to_json(program.graph)},
                 {"kernels", std::move(kernels)},
                 {"tasks", std::move(tasks)},
                 {"hints", hints_to_json(program.hints)}};
    if (!program.weights.empty()) root["weights"] = program.weights;
    if (!program.passes.empty()) {
        json passes = json::array();
        for (Pass p : program.passes) passes.push_back(to_string(p));
        root["passes"] = std::move(passes);
    }
    if (const auto& m = program.memory) {
        json memory = json::object();
        for (const auto& [name, field] : kMemoryFields) memory[name] = (*m).*field;
        if (m->l3_capacity) memory["l3_capacity"] = m->l3_capacity;  // keep-in-l3's plan
        root["memory"] = std::move(memory);
    }
    return root.dump(1) + "\n";
}

Program read_kpu(const std::string& text, const std::string& source) {
    const json root = hw::parse_document(text, source, "kpu", hw::throw_as<CompileError>);
    JsonReader f(root, "", source, hw::throw_as<CompileError>);
    if (f.string("format") != "kpu") f.fail("format", "expected \"kpu\", got " + show(root["format"]));
    const uint64_t version = f.uint("version");
    if (version != Program::kVersion)
        f.fail("version", "unsupported version " + std::to_string(version) + " (this reader knows " +
                              std::to_string(Program::kVersion) + ")");
    Program program;
    {
        JsonReader t = f.object("target");
        program.target.config = t.string("config");
        auto positive = [&](const char* key) {
            const uint64_t v = t.uint(key);
            if (v == 0 || v > UINT32_MAX) t.fail(t.path_of(key), "must be a positive 32-bit integer");
            return uint32_t(v);
        };
        program.target.fabric_rows = positive("fabric_rows");
        program.target.fabric_cols = positive("fabric_cols");
        program.target.compute_tiles = positive("compute_tiles");
        if (t.has("overrides")) {
            const json& overrides = t.array("overrides");
            for (size_t i = 0; i < overrides.size(); ++i)
                program.target.overrides.push_back(t.as_string(overrides[i], t.path_of("overrides", i)));
        }
        t.finish();
    }
    program.graph = graph_from_json(f.field("graph"), "graph", source);
    const Graph& g = program.graph;

    const json& kernels = f.array("kernels");
    // One kernel per op in graph order, except views (aliases, no kernel).
    std::vector<uint32_t> lowered;
    for (uint32_t op = 0; op < g.ops().size(); ++op)
        if (!is_view_op(g.ops()[op])) lowered.push_back(op);
    if (kernels.size() != lowered.size())
        f.fail("kernels", std::to_string(kernels.size()) + " kernels for " + std::to_string(lowered.size()) +
                              " graph ops" + (lowered.size() == g.ops().size() ? "" : " that are not views") +
                              " (one per op expected)");
    for (uint32_t n = 0; n < kernels.size(); ++n) {
        const uint32_t i = lowered[n];
        JsonReader k = f.child(kernels[n], f.path_of("kernels", n));
        Kernel kernel;
        const std::string name = k.string("op");
        auto index = g.find_op(name);
        if (!index) k.fail(k.path_of("op"), "unknown op '" + name + "'");
        if (*index != i)
            k.fail(k.path_of("op"), "op '" + name + "' but op " + std::to_string(i) + " in graph order is '" +
                                        g.ops()[i].name + "'");
        kernel.op = i;
        const std::string dataflow = k.string("dataflow");
        if (!parse_dataflow(dataflow, kernel.dataflow))
            k.fail(k.path_of("dataflow"), "unknown dataflow '" + dataflow + "' (" + hw::names_in(kDataflowNames) + ")");
        const json& tile = k.array("tile");
        if (tile.size() != 3 && tile.size() != 4)
            k.fail(k.path_of("tile"), "expected [tm, tn, tk] or [tm, tn, tk, kc], got " + show(tile));
        const KernelDims mm = kernel_dims(g, i);
        const uint64_t dims[3] = {mm.m, mm.n, mm.k};
        const char* names[3] = {"tm", "tn", "tk"};
        const char* dim_names[3] = {"M", "N", "K"};
        uint32_t sizes[3];
        for (int d = 0; d < 3; ++d) {
            const std::string path = k.path_of("tile", d);
            const uint64_t v = k.as_uint(tile[d], path);
            if (v == 0) k.fail(path, std::string(names[d]) + " is 0");
            if (v > dims[d])
                k.fail(path, std::string(names[d]) + " " + std::to_string(v) + " exceeds " + dim_names[d] + " " +
                                 std::to_string(dims[d]));
            if (v > kMaxTileSide)
                k.fail(path, std::string(names[d]) + " " + std::to_string(v) + " exceeds the longest tile side, " +
                                 std::to_string(kMaxTileSide));
            sizes[d] = uint32_t(v);
        }
        kernel.tile = {sizes[0], sizes[1], sizes[2], 0};
        const bool vector = !is_copy_op(g, g.ops()[i]) && is_vector_op(g.ops()[i]);
        if (vector && sizes[1] != dims[1])  // a vector op's row tiles hold whole rows
            k.fail(k.path_of("tile", 1), "tn " + std::to_string(sizes[1]) + " of a vector op must be its cols " +
                                             std::to_string(dims[1]) + " (the tile is [tm, cols, 1])");
        if (vector) {
            const VectorOperands v = vector_operands(g, i);
            if (v.transpose && sizes[0] % v.matrix_rows != 0)  // the movers transpose whole matrices
                k.fail(k.path_of("tile", 0), "tm " + std::to_string(sizes[0]) + " of a Transpose must be a multiple of " +
                                                 std::to_string(v.matrix_rows) + " (whole matrices)");
        }
        if (is_flash_op(g.ops()[i]) && (sizes[2] != dims[2] || tile.size() == 4))  // Q K^T over the whole head
            k.fail(k.path_of("tile", 2), "tk " + std::to_string(sizes[2]) + " of a flash_attention must be its head size " +
                                             std::to_string(dims[2]) + " (the tile is [Br, Bc, E])");
        if (tile.size() == 4) {  // K in passes of kc: a multiple of tk, shorter than K
            const std::string path = k.path_of("tile") + "[3]";
            const uint64_t kc = k.as_uint(tile[3], path);
            if (kc == 0 || kc % sizes[2] != 0 || kc >= dims[2] || kc > kMaxTileSide)
                k.fail(path, "kc " + std::to_string(kc) + " must be a multiple of tk " + std::to_string(sizes[2]) +
                                 " and less than K " + std::to_string(dims[2]) + ", at most " +
                                 std::to_string(kMaxTileSide));
            kernel.tile.kc = uint32_t(kc);
        }
        // In 64 bits, so that M of 2^32 + 1 tiles does not wrap to 1.
        const uint64_t grid = tiles_within_limit(dims[0], sizes[0]) * tiles_within_limit(dims[1], sizes[1]);
        if (grid * mm.batch > kMaxCTiles)
            k.fail(k.path_of("tile"), "more than " + std::to_string(kMaxCTiles) + " C tiles");
        kernel.hints = read_hints(k, "hints");
        k.finish();
        program.kernels.push_back(kernel);
    }

    const json& tasks = f.array("tasks");
    for (uint32_t i = 0; i < tasks.size(); ++i) {
        JsonReader t = f.child(tasks[i], f.path_of("tasks", i));
        Task task;
        const uint64_t kernel = t.uint("kernel");
        if (kernel >= program.kernels.size())
            t.fail(t.path_of("kernel"), "kernel " + std::to_string(kernel) + " out of range (" +
                                            std::to_string(program.kernels.size()) + " kernels)");
        task.kernel = uint32_t(kernel);
        const Kernel& kr = program.kernels[kernel];
        std::tie(task.r0, task.r1) = read_range(t, "rows");
        std::tie(task.c0, task.c1) = read_range(t, "cols");
        const KernelDims mm = kernel_dims(g, kr.op);
        const uint32_t Mt = tile_count(mm.m, kr.tile.tm), Nt = tile_count(mm.n, kr.tile.tn);
        if (task.r1 > Mt)
            t.fail(t.path_of("rows"), "tile row " + std::to_string(task.r1 - 1) + " out of range (kernel " +
                                          std::to_string(kernel) + " has " + std::to_string(Mt) + " tile rows)");
        if (task.c1 > Nt)
            t.fail(t.path_of("cols"), "tile column " + std::to_string(task.c1 - 1) + " out of range (kernel " +
                                          std::to_string(kernel) + " has " + std::to_string(Nt) + " tile columns)");
        if (is_flash_op(g.ops()[kr.op]) && (task.r1 != task.r0 + 1 || task.c0 != 0 || task.c1 != Nt))
            t.fail(t.path_of("rows"), "a flash_attention task is one tile row by all " + std::to_string(Nt) +
                                          " tile columns (one query block against every key block)");
        if (t.has("batch")) {
            const uint64_t batch = t.uint("batch");
            if (batch >= mm.batch)
                t.fail(t.path_of("batch"), "matrix " + std::to_string(batch) + " out of range (kernel " +
                                               std::to_string(kernel) + " has " + std::to_string(mm.batch) +
                                               (mm.batch == 1 ? " C matrix)" : " C matrices)"));
            task.batch = uint32_t(batch);
        }
        const json& deps = t.array("deps");
        for (size_t d = 0; d < deps.size(); ++d) {
            const std::string path = t.path_of("deps", d);
            const uint64_t dep = t.as_uint(deps[d], path);
            if (dep >= tasks.size())
                t.fail(path, "task " + std::to_string(dep) + " does not exist (" + std::to_string(tasks.size()) +
                                 " tasks)");
            task.deps.push_back(uint32_t(dep));
        }
        t.finish();
        program.tasks.push_back(std::move(task));
    }
    program.hints = read_hints(f, "hints");
    if (f.has("weights")) {
        program.weights = f.string("weights");
        if (const std::string problem = tensor_name_problem(program.weights); !problem.empty())
            f.fail("weights", "must be a directory name beside the .kpu: " + problem);
    }
    if (f.has("passes")) {
        const std::vector<std::string> names = f.strings("passes");
        for (size_t i = 0; i < names.size(); ++i) {
            Pass pass;
            if (!parse_pass(names[i], pass))
                f.fail(f.path_of("passes", i), "unknown pass '" + names[i] + "' (" + hw::names_in(kPassNames) + ")");
            program.passes.push_back(pass);
        }
    }
    if (f.has("memory")) {
        JsonReader m = f.object("memory");
        MemoryEstimate e;
        for (const auto& [name, field] : kMemoryFields) e.*field = m.uint(name);
        if (m.has("l3_capacity")) e.l3_capacity = m.uint("l3_capacity");
        m.finish();
        if (e.granule == 0) f.fail("memory.granule", "must be positive");
        program.memory = e;
    }
    f.finish();

    check_tasks(f, program);
    check_l3_residency(f, program);
    // Where each kernel's tasks lie (every task checked once, not once per kernel).
    std::vector<std::pair<uint32_t, uint32_t>> task_span(program.kernels.size(), {UINT32_MAX, 0});
    for (uint32_t t = 0; t < program.tasks.size(); ++t) {
        auto& [first, end] = task_span[program.tasks[t].kernel];
        first = std::min(first, t), end = t + 1;
    }
    Hints total;
    // keep-in-l3's tensors move no DRAM bytes: their LOADs and STOREs come off the closed form.
    const L3Plan l3 = program_l3_plan(program);
    const std::vector<L3Traffic> on_chip = l3.count ? l3_traffic(program, l3.resident) : std::vector<L3Traffic>();
    for (uint32_t k = 0; k < program.kernels.size(); ++k) {
        Hints actual = kernel_hints(program, k, task_span[k].first, task_span[k].second);
        if (!on_chip.empty()) drop_l3_traffic(actual, on_chip[k]);
        actual.estimated_cycles = program.kernels[k].hints.estimated_cycles;
        check_hints(f, "kernels[" + std::to_string(k) + "].hints", program.kernels[k].hints, actual);
        total.add(actual);
    }
    check_hints(f, "hints", program.hints, total);
    check_memory(f, program);
    if (program.hints.estimated_cycles != total.estimated_cycles)
        f.fail("hints.estimated_cycles", std::to_string(program.hints.estimated_cycles) +
                                             " but the kernels' estimates add up to " +
                                             std::to_string(total.estimated_cycles));
    return program;
}

void write_kpu_file(const Program& program, const std::string& path) {
    if (const std::string problem = hw::write_output_file(path, write_kpu(program)); !problem.empty())
        throw CompileError(path + ": " + problem);
}

Program read_kpu_file(const std::string& path) { return read_kpu(read_text_file(path, "program"), path); }

}  // namespace kpu::compiler
