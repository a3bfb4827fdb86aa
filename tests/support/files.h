// Files of a test: a path of its own for what it writes, and the text of what it reads.
#pragma once

#include <fstream>
#include <iterator>
#include <string>

#include <gtest/gtest.h>

namespace kpu::test {

/// A path in the temporary directory named after this test, so that tests running in
/// parallel (ctest) never share a file.
inline std::string temp(const std::string& name) {
    return ::testing::TempDir() + ::testing::UnitTest::GetInstance()->current_test_info()->name() + "_" + name;
}

/// The whole text of a file ("" if it cannot be opened).
inline std::string slurp(const std::string& path) {
    std::ifstream in(path);
    return std::string(std::istreambuf_iterator<char>(in), {});
}

}  // namespace kpu::test
