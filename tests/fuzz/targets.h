// The readers' fuzz targets: each takes any bytes, and either the reader refuses them with
// its own error (one line naming the file) or what it read survives a round trip through
// the writer (read, write, read back: equal). Anything else (another exception, a crash, a
// round trip that changes the value) aborts with a message: a finding. Built as libFuzzer
// binaries by scripts/fuzz (tests/fuzz/fuzz_main.cpp) and replayed on the seed and
// regression corpora by the unit tests (replay_test.cpp).
#pragma once

#include <cstddef>
#include <cstdint>

namespace kpu::fuzz {

void fuzz_config(const uint8_t* data, size_t size);  ///< hw::parse_config (no writer: no round trip)
void fuzz_graph(const uint8_t* data, size_t size);   ///< parse_graph, graph_to_json
void fuzz_onnx(const uint8_t* data, size_t size);    ///< import_onnx_bytes, then the graph's round trip
void fuzz_kpu(const uint8_t* data, size_t size);     ///< read_kpu, write_kpu
void fuzz_npy(const uint8_t* data, size_t size);     ///< read_npy, write_npy (through a file)

/// A target by name ("config", "graph", "onnx", "kpu", "npy"), for the replay test.
struct Target {
    const char* name;
    void (*run)(const uint8_t* data, size_t size);
};
inline constexpr Target kTargets[] = {
    {"config", fuzz_config}, {"graph", fuzz_graph}, {"onnx", fuzz_onnx}, {"kpu", fuzz_kpu}, {"npy", fuzz_npy}};

}  // namespace kpu::fuzz
