// Every input of the fuzz targets' seed corpora (examples/, configs/, tests/fuzz/corpus/)
// and of their regression corpus (tests/fuzz/regressions/<target>/: inputs that once crashed
// a reader, hung it or broke a round trip) replayed through the target: each is refused
// with the reader's own error or survives the round trip (a target aborts otherwise).
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "tests/fuzz/targets.h"

namespace kpu::fuzz {
namespace {

namespace fs = std::filesystem;

/// The files of `dir` (none if it does not exist), sorted.
std::vector<fs::path> files_in(const fs::path& dir, const std::string& extension = "") {
    std::vector<fs::path> out;
    if (!fs::is_directory(dir)) return out;
    for (const auto& entry : fs::directory_iterator(dir))
        if (entry.is_regular_file() && (extension.empty() || entry.path().extension() == extension))
            out.push_back(entry.path());
    std::sort(out.begin(), out.end());
    return out;
}

/// Runs target `name` on its seeds and regressions; returns how many inputs it ran.
size_t replay(const std::string& name, const std::vector<fs::path>& extra_seeds) {
    const fs::path root = KPU_SOURCE_DIR;
    std::vector<fs::path> inputs = extra_seeds;
    for (const char* corpus : {"corpus", "regressions"})
        for (const fs::path& p : files_in(root / "tests/fuzz" / corpus / name)) inputs.push_back(p);
    const Target* target = nullptr;
    for (const Target& t : kTargets)
        if (t.name == name) target = &t;
    if (!target) ADD_FAILURE() << "no target " << name;
    for (const fs::path& p : inputs) {
        SCOPED_TRACE(p.string());
        std::ifstream in(p, std::ios::binary);
        const std::string bytes((std::istreambuf_iterator<char>(in)), {});
        if (target) target->run(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size());
    }
    return inputs.size();
}

const fs::path kRoot = KPU_SOURCE_DIR;

TEST(FuzzReplay, ConfigSeedsAndRegressions) { EXPECT_GE(replay("config", files_in(kRoot / "configs", ".json")), 5u); }
TEST(FuzzReplay, GraphSeedsAndRegressions) { EXPECT_GE(replay("graph", files_in(kRoot / "examples", ".json")), 7u); }
TEST(FuzzReplay, OnnxSeedsAndRegressions) { EXPECT_GE(replay("onnx", {}), 1u); }
TEST(FuzzReplay, KpuSeedsAndRegressions) { EXPECT_GE(replay("kpu", {}), 1u); }
TEST(FuzzReplay, NpySeedsAndRegressions) { EXPECT_GE(replay("npy", {}), 1u); }

}  // namespace
}  // namespace kpu::fuzz
