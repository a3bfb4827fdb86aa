// Runs this build's tools (kpu-sim, kpu-compile) through the shell, as a user or a script
// does, and keeps what they said.
#pragma once

#include <cstdlib>
#include <string>

#include <gtest/gtest.h>
#include <sys/wait.h>

#include "tests/support/files.h"

namespace kpu::test {

/// What a command did.
struct ToolRun {
    int exit_code;    ///< its exit status; -1 if it did not exit (a signal)
    std::string out;  ///< what it wrote on stdout
    std::string err;  ///< what it wrote on stderr
};

/// Runs the shell `command` (which may redirect inside, e.g. `2>&1`); its stdout and stderr
/// go through the files <TempDir><stem><this test's name>.out and .err, one pair per test
/// because ctest runs tests in parallel.
inline ToolRun run_command(const std::string& command, const std::string& stem) {
    const std::string files = ::testing::TempDir() + stem + ::testing::UnitTest::GetInstance()->current_test_info()->name();
    const std::string out = files + ".out", err = files + ".err";
    const int status = std::system(("{ " + command + "; } >" + out + " 2>" + err).c_str());
    return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, slurp(out), slurp(err)};
}

}  // namespace kpu::test
