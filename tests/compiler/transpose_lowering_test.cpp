// Transpose: which perms are meant to lower (a batch of 2D transposes, the last two axes
// swapped) and the reason given for every other perm.
#include <gtest/gtest.h>

#include "compiler/dfx.h"
#include "tests/compiler/test_util.h"

namespace kpu::compiler {
namespace {

/// y = Transpose(x) with x of `shape` and `perm` ("" for ONNX's default).
std::string transpose(const std::string& shape, const std::string& perm) {
    return R"({"tensors": [{"name": "x", "shape": )" + shape + R"(, "role": "input"}, {"name": "y"}],
      "ops": [{"op": "Transpose", "name": "t1", "inputs": ["x"], "outputs": ["y"], "attributes": )" +
           (perm.empty() ? std::string("{}") : R"({"perm": )" + perm + "}") + "}]}";
}

TEST(TransposeLowering, OtherPermsAreRefusedWithTheReason) {
    const hw::Config edge = test::config("edge");
    const auto error = [&](const std::string& text) {
        return test::error_of([&] { compile(parse_graph(text, "t.json"), edge); });
    };
    const std::string head = "graph: Unsupported operators: ";
    EXPECT_EQ(error(transpose("[3, 5, 7]", "[1, 0, 2]")),
              head + "Transpose (t1: perm = [1, 0, 2] not yet supported (only swapping the last two axes))");
    EXPECT_EQ(error(transpose("[3, 5, 7]", "")),  // ONNX's default: every axis reversed
              head + "Transpose (t1: perm = [2, 1, 0] not yet supported (only swapping the last two axes))");
    EXPECT_EQ(error(transpose("[2, 3, 5, 7]", "[1, 0, 3, 2]")),
              head + "Transpose (t1: perm = [1, 0, 3, 2] not yet supported (only swapping the last two axes))");
    EXPECT_EQ(error(transpose("[7]", "[0]")),
              head + "Transpose (t1: perm = [0] not yet supported (only swapping the last two axes))");
}

}  // namespace
}  // namespace kpu::compiler
