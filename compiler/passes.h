// The optimization passes compile() may run (docs/compiler.md, "Passes"), each switchable by
// name: an optimization level enables every pass of that level and below (kpu-compile -O0,
// -O1, -O2, -O3; -O2 is the default), and --disable-pass NAME switches one off. The passes that
// lowering needs (composite expansion, the layout pass, long rows) are not in this list: they
// run at every level. A Program records the names of the passes that ran (Program::passes,
// the .kpu's "passes"), in the order they ran.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "hardware/enum_names.h"

namespace kpu::compiler {

enum class Pass : uint8_t { FoldConstants, FoldBatchnorm, FuseEpilogue, FuseFfn, FuseAttention, PlanMemory, FuseRows,
                            KeepInL3, FoldQdq };
/// As kpu-compile --disable-pass, the .kpu's "passes" and messages spell it.
inline constexpr EnumName<Pass> kPassNames[] = {{Pass::FoldConstants, "fold-constants"},
                                                {Pass::FoldBatchnorm, "fold-batchnorm"},
                                                {Pass::FuseEpilogue, "fuse-epilogue"},
                                                {Pass::FuseFfn, "fuse-ffn"},
                                                {Pass::FuseAttention, "fuse-attention"},
                                                {Pass::PlanMemory, "plan-memory"},
                                                {Pass::FuseRows, "fuse-rows"},
                                                {Pass::KeepInL3, "keep-in-l3"},
                                                {Pass::FoldQdq, "fold-qdq"}};
inline const char* to_string(Pass pass) { return hw::name_in(kPassNames, pass); }
inline bool parse_pass(const std::string& name, Pass& out) { return hw::value_in(kPassNames, name, out); }

/// The lowest optimization level that runs each pass, indexed by Pass.
/// Level 3 holds the passes that trade cycles for DRAM bytes on some programs (keep-in-l3).
inline constexpr int kPassLevel[] = {1, 1, 1, 2, 2, 1, 2, 3, 1};
/// The highest level (kpu-compile -O3).
constexpr int kMaxOptLevel = 3;
/// The default level (kpu-compile without -O): every pass that does not cost cycles where it
/// saves DRAM bytes.
constexpr int kDefaultOptLevel = 2;

/// Which passes run: those of `level` and below, less the disabled ones.
struct PassSelection {
    int level = kDefaultOptLevel;
    std::vector<Pass> disabled;

    bool enabled(Pass pass) const {
        if (kPassLevel[int(pass)] > level) return false;
        for (Pass d : disabled)
            if (d == pass) return false;
        return true;
    }
};

}  // namespace kpu::compiler
