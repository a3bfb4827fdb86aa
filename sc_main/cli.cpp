#include "sc_main/cli.h"

#include <sstream>
#include <stdexcept>

#include <boost/program_options.hpp>

namespace kpu::cli {

namespace po = boost::program_options;

Options parse(int argc, const char* const argv[]) {
    Options o;
    std::vector<std::string> sets;
    po::options_description desc(
        "Usage: kpu-sim --config FILE [--set PATH=VALUE ...] ACTION\n"
        "       kpu-sim --config FILE --program X.kpu [--inputs DIR] [--outputs DIR] [--check] [--stats FILE]\n"
        "SystemC/TLM-2.0 virtual platform of the Stillwater KPU.\n\nOptions");
    desc.add_options()
        ("help,h", "print this help and exit")
        ("config,c", po::value(&o.config_path)->value_name("FILE"), "hardware description (configs/<sku>.json)")
        ("set", po::value(&sets)->composing()->value_name("PATH=VALUE"),
         "override one config field before validation, e.g. --set fabric.rows=32 (repeatable)")
        ("describe", po::bool_switch(&o.describe), "print the SKU's derived figures (peaks, bandwidths, ridge point, capacities) and exit")
        ("elaborate-only", po::bool_switch(&o.elaborate_only), "build the platform's module tree, print the module count per kind and exit")
        ("program,p", po::value(&o.program_path)->value_name("X.kpu"), "run this program (from kpu-compile) on the platform")
        ("inputs", po::value(&o.inputs_dir)->value_name("DIR"),
         "read <tensor>.npy (float32) for inputs and constants; tensors without a file get seeded random data")
        ("outputs", po::value(&o.outputs_dir)->value_name("DIR"), "write every output tensor as <tensor>.npy")
        ("check", po::bool_switch(&o.check), "compare every output with an independent reference evaluation of the graph")
        ("stats", po::value(&o.stats_path)->value_name("FILE"), "write the run's statistics as JSON")
        ("seed", po::value(&o.seed)->value_name("N"), "seed of the random input data (default 1)");
    std::ostringstream help;
    help << desc;
    o.help_text = help.str();

    po::variables_map vm;
    try {
        po::store(po::command_line_parser(argc, argv).options(desc).run(), vm);
        po::notify(vm);
    } catch (const po::error& e) {
        throw std::runtime_error(std::string(e.what()) + " (see kpu-sim --help)");
    }
    o.help = vm.count("help") > 0;
    if (o.help) return o;
    if (o.config_path.empty()) throw std::runtime_error("--config FILE is required (see kpu-sim --help)");
    for (const auto& s : sets) o.overrides.push_back(hw::parse_override(s));
    const int actions = int(o.describe) + int(o.elaborate_only) + int(!o.program_path.empty());
    if (actions == 0)
        throw std::runtime_error("nothing to do: give --program X.kpu, --describe or --elaborate-only (see kpu-sim --help)");
    if (actions > 1) throw std::runtime_error("--program, --describe and --elaborate-only exclude each other");
    if (o.program_path.empty() && (o.check || !o.inputs_dir.empty() || !o.outputs_dir.empty() || !o.stats_path.empty()))
        throw std::runtime_error("--inputs, --outputs, --check and --stats need --program");
    return o;
}

}  // namespace kpu::cli
