// kpu-sim: the virtual platform's command-line front end. Every failure becomes one line on
// stderr and a non-zero exit.
#include <cstdlib>
#include <iostream>
#include <systemc>

#include "hardware/config.h"
#include "platform/kpu_platform.h"
#include "sc_main/cli.h"
#include "sc_main/simulate.h"

int sc_main(int argc, char* argv[]) {
    try {
        const kpu::cli::Options options = kpu::cli::parse(argc, argv);
        if (options.help) {
            std::cout << options.help_text;
            return 0;
        }
        const kpu::hw::Config config = kpu::hw::load_config(options.config_path, options.overrides);
        if (options.describe) {
            std::cout << kpu::hw::describe(config);
            return 0;
        }
        if (options.elaborate_only) {
            // Deliberately never destroyed: the process ends right after, and SystemC 2.3's
            // module registry makes tearing down 70000 modules cost about 1 s.
            new kpu::platform::KpuPlatform("kpu", config);
            sc_core::sc_start(sc_core::SC_ZERO_TIME);  // completes binding: elaboration errors surface here
            // Counted from SystemC's object tree, not from the config: every module built.
            std::cout << "platform kpu (" << config.name << ") elaborated:\n"
                      << kpu::platform::format_counts(kpu::platform::count_modules());
            return 0;
        }
        return kpu::cli::run_program(config, options, std::cout);
    } catch (const std::exception& e) {
        std::cerr << "kpu-sim: error: " << e.what() << "\n";
        return 1;
    }
    return 0;
}

// libsystemc prints its banner while it starts, before sc_main, unless the environment says
// otherwise; our main() says so (the user may still ask for it) and hands over to SystemC.
int main(int argc, char* argv[]) {
    setenv("SC_COPYRIGHT_MESSAGE", "DISABLE", 0);
    return sc_core::sc_elab_and_sim(argc, argv);
}
