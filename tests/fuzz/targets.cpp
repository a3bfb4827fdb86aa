#include "tests/fuzz/targets.h"

#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <string>

#include "compiler/compile_error.h"
#include "compiler/graph_json.h"
#include "compiler/kpu_format.h"
#include "compiler/onnx_import.h"
#include "hardware/config.h"
#include "sc_main/npy.h"

namespace kpu::fuzz {
namespace {

/// A property the reader promises does not hold: say which and stop (libFuzzer keeps the input).
[[noreturn]] void broken(const char* target, const std::string& what) {
    std::fprintf(stderr, "fuzz_%s: %s\n", target, what.c_str());
    std::abort();
}

std::string text_of(const uint8_t* data, size_t size) { return std::string(reinterpret_cast<const char*>(data), size); }

/// The graph written and read back is the graph.
void graph_round_trip(const char* target, const compiler::Graph& graph) {
    compiler::Graph back;
    const std::string written = compiler::graph_to_json(graph).dump();
    try {
        back = compiler::parse_graph(written, "written.json");
    } catch (const compiler::CompileError& e) {
        broken(target, std::string("the writer's graph is refused: ") + e.what());
    }
    if (!(back == graph)) broken(target, "the graph read back differs: " + written.substr(0, 200));
}

}  // namespace

void fuzz_config(const uint8_t* data, size_t size) {
    try {
        hw::parse_config(text_of(data, size), "fuzz.json");
    } catch (const hw::ConfigError&) {
    }
}

void fuzz_graph(const uint8_t* data, size_t size) {
    compiler::Graph graph;
    try {
        graph = compiler::parse_graph(text_of(data, size), "fuzz.json");
    } catch (const compiler::CompileError&) {
        return;
    }
    graph_round_trip("graph", graph);
}

void fuzz_onnx(const uint8_t* data, size_t size) {
    compiler::ImportedModel model;
    try {
        model = compiler::import_onnx_bytes(text_of(data, size), "fuzz.onnx");
    } catch (const compiler::CompileError&) {
        return;
    }
    graph_round_trip("onnx", model.graph);
}

void fuzz_kpu(const uint8_t* data, size_t size) {
    compiler::Program program;
    try {
        program = compiler::read_kpu(text_of(data, size), "fuzz.kpu");
    } catch (const compiler::CompileError&) {
        return;
    }
    const std::string written = compiler::write_kpu(program);
    compiler::Program back;
    try {
        back = compiler::read_kpu(written, "written.kpu");
    } catch (const compiler::CompileError& e) {
        broken("kpu", std::string("the writer's program is refused: ") + e.what());
    }
    if (!(back == program)) broken("kpu", "the program read back differs");
    if (compiler::write_kpu(back) != written) broken("kpu", "the program written twice differs");
}

void fuzz_npy(const uint8_t* data, size_t size) {
    // read_npy reads a file: one per process (libFuzzer's workers are processes).
    static const std::string dir = [] {
        const char* tmp = std::getenv("TMPDIR");
        return std::string(tmp && *tmp ? tmp : "/tmp") + "/kpu_fuzz_npy_" + std::to_string(::getpid());
    }();
    const std::string in = dir + ".in.npy", out = dir + ".out.npy";
    std::ofstream(in, std::ios::binary | std::ios::trunc).write(reinterpret_cast<const char*>(data), std::streamsize(size));
    cli::NpyArray array;
    try {
        array = cli::read_npy(in);
    } catch (const cli::NpyError&) {
        return;
    }
    cli::write_npy(out, array.shape, array.data.data());
    cli::NpyArray back;
    try {
        back = cli::read_npy(out);
    } catch (const cli::NpyError& e) {
        broken("npy", std::string("the writer's array is refused: ") + e.what());
    }
    if (back.shape != array.shape || back.data.size() != array.data.size() ||
        std::memcmp(back.data.data(), array.data.data(), array.data.size() * sizeof(float)) != 0)
        broken("npy", "the array read back differs");
}

}  // namespace kpu::fuzz
