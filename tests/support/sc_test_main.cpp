// Entry point of the GoogleTest binaries that link SystemC: libsystemc owns main() and calls
// sc_main(), so the tests start from here. ctest runs each TEST in its own process
// (gtest_discover_tests), because SystemC allows one elaboration per process.
#include <cstdlib>

#include <gtest/gtest.h>
#include <systemc>

int sc_main(int argc, char* argv[]) {
    ::testing::InitGoogleTest(&argc, argv);
    return RUN_ALL_TESTS();
}

// libsystemc prints its banner while it starts, before sc_main, unless the environment says
// otherwise; our main() says so (the user may still ask for it) and hands over to SystemC.
int main(int argc, char* argv[]) {
    setenv("SC_COPYRIGHT_MESSAGE", "DISABLE", 0);
    return sc_core::sc_elab_and_sim(argc, argv);
}
