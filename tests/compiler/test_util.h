// Helpers shared by the compiler tests.
#pragma once

#include <string>

#include "compiler/compile_error.h"
#include "compiler/generate.h"
#include "compiler/graph_json.h"
#include "hardware/config.h"

namespace kpu::compiler::test {

inline hw::Config config(const std::string& name) {
    return hw::load_config(std::string(KPU_SOURCE_DIR) + "/configs/" + name + ".json");
}

inline std::string matmul_json(uint64_t m, uint64_t n, uint64_t k, bool bias = false,
                               const std::string& activation = "") {
    std::string text = "{\"op\": \"matmul\", \"A\": {\"shape\": [" + std::to_string(m) + ", " + std::to_string(k) +
                       "], \"dtype\": \"float32\"}, \"B\": {\"shape\": [" + std::to_string(k) + ", " +
                       std::to_string(n) + "], \"dtype\": \"float32\"}, \"C\": {\"shape\": [" + std::to_string(m) +
                       ", " + std::to_string(n) + "], \"dtype\": \"float32\"}";
    if (bias) text += ", \"bias\": {\"shape\": [" + std::to_string(n) + "]}";
    if (!activation.empty()) text += ", \"activation\": \"" + activation + "\"";
    return text + "}";
}

inline Program compile_matmul(uint64_t m, uint64_t n, uint64_t k, const hw::Config& target,
                              Dataflow dataflow = Dataflow::OutputStationary, bool bias = false) {
    return compile(parse_graph(matmul_json(m, n, k, bias), "test.json"), target, {dataflow});
}

/// The MLP y = relu(x @ W1 + b1) @ W2 + b2 with h in DRAM.
inline std::string mlp_json(uint64_t batch, uint64_t in, uint64_t hidden, uint64_t out) {
    auto s = [](uint64_t v) { return std::to_string(v); };
    return R"({"tensors": [
      {"name": "x", "shape": [)" + s(batch) + ", " + s(in) + R"(], "role": "input"},
      {"name": "W1", "shape": [)" + s(in) + ", " + s(hidden) + R"(], "role": "constant"},
      {"name": "b1", "shape": [)" + s(hidden) + R"(], "role": "constant"},
      {"name": "h"},
      {"name": "W2", "shape": [)" + s(hidden) + ", " + s(out) + R"(], "role": "constant"},
      {"name": "b2", "shape": [)" + s(out) + R"(], "role": "constant"},
      {"name": "y"}],
     "ops": [
      {"op": "matmul", "name": "fc1", "A": "x", "B": "W1", "bias": "b1", "activation": "relu", "C": "h"},
      {"op": "matmul", "name": "fc2", "A": "h", "B": "W2", "bias": "b2", "C": "y"}]})";
}

/// Runs `f` and returns the CompileError message; records a failure if nothing is thrown.
template <typename F>
std::string error_of(F&& f) {
    try {
        f();
    } catch (const CompileError& e) {
        return e.what();
    }
    ADD_FAILURE() << "no CompileError";
    return "";
}

}  // namespace kpu::compiler::test
