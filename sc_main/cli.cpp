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
        "SystemC/TLM-2.0 virtual platform of the Stillwater KPU.\n\nOptions");
    desc.add_options()
        ("help,h", "print this help and exit")
        ("config,c", po::value(&o.config_path)->value_name("FILE"), "hardware description (configs/<sku>.json)")
        ("set", po::value(&sets)->composing()->value_name("PATH=VALUE"),
         "override one config field before validation, e.g. --set fabric.rows=32 (repeatable)")
        ("describe", po::bool_switch(&o.describe), "print the SKU's derived figures (peaks, bandwidths, ridge point, capacities) and exit")
        ("elaborate-only", po::bool_switch(&o.elaborate_only), "build the platform's module tree, print the module count per kind and exit");
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
    if (!o.describe && !o.elaborate_only) throw std::runtime_error("nothing to do: give an action such as --describe or --elaborate-only (see kpu-sim --help)");
    return o;
}

}  // namespace kpu::cli
