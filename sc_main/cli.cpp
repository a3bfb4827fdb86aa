#include "sc_main/cli.h"

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <limits>
#include <cmath>
#include <cstdlib>
#include <sstream>
#include <tuple>
#include <stdexcept>

#include <boost/program_options.hpp>

#include "hardware/host_memory.h"

namespace kpu::cli {

namespace po = boost::program_options;

namespace {

/// A whole number of an option: digits only (Boost would read "-1" as 2^32 - 1), at most `max`.
uint64_t parse_whole(const std::string& option, const std::string& text, uint64_t max) {
    const bool digits = !text.empty() && text.size() <= 20 &&
                        std::all_of(text.begin(), text.end(), [](unsigned char c) { return std::isdigit(c); });
    errno = 0;
    const unsigned long long value = digits ? std::strtoull(text.c_str(), nullptr, 10) : 0;
    if (!digits || errno == ERANGE || value > max)
        throw std::runtime_error(option + " " + text + ": expected a whole number from 0 to " + std::to_string(max));
    return value;
}

}  // namespace

std::pair<uint64_t, uint64_t> parse_time_window(const std::string& text) {
    // A number and an optional unit; parsed by hand (std::regex recurses deeply, which
    // AddressSanitizer misreads once SystemC has switched stacks).
    auto parse_one = [&](const std::string& part, uint64_t empty) {
        if (part.empty()) return empty;
        const char* begin = part.c_str();
        char* end = nullptr;
        const double value = std::strtod(begin, &end);
        const std::string unit = end;
        const std::pair<const char*, double> units[] = {{"", 1e3}, {"ps", 1}, {"ns", 1e3}, {"us", 1e6}, {"ms", 1e9}, {"s", 1e12}};
        for (const auto& [name, scale] : units)
            if (end != begin && unit == name && !std::isspace(static_cast<unsigned char>(*begin)) && value >= 0 &&
                value * scale < 9e18)  // picoseconds a uint64 (and llround) holds: about 100 days
                return uint64_t(std::llround(value * scale));
        throw std::runtime_error("--vcd-window " + text + ": '" + part + "' is not a time such as 12.5us");
    };
    const auto colon = text.find(':');
    if (colon == std::string::npos) throw std::runtime_error("--vcd-window " + text + ": expected START:END, e.g. 10us:25us");
    const uint64_t from = parse_one(text.substr(0, colon), 0);
    const uint64_t to = parse_one(text.substr(colon + 1), UINT64_MAX);
    if (to <= from) throw std::runtime_error("--vcd-window " + text + ": the end is not after the start");
    return {from, to};
}

Options parse(int argc, const char* const argv[]) {
    Options o;
    std::vector<std::string> sets;
    std::string window;
    bool single_thread = false;
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
         "read <tensor>.npy (of the tensor's dtype; bfloat16 as uint16) for inputs and constants; tensors without a file get seeded random data")
        ("outputs", po::value(&o.outputs_dir)->value_name("DIR"), "write every output tensor as <tensor>.npy, in its dtype")
        ("check", po::bool_switch(&o.check), "compare every computed tensor (outputs and intermediates) with an independent reference evaluation of the graph, op by op")
        ("stats", po::value(&o.stats_path)->value_name("FILE"), "write the run's statistics as JSON")
        ("seed", po::value<std::string>()->value_name("N"), "seed of the random input data (default 1)")
        ("vcd", po::value(&o.vcd_path)->value_name("FILE"), "write waveforms (engine busy, queue depth, bytes, fabric active, ops in flight) as VCD")
        ("vcd-window", po::value(&window)->value_name("START:END"), "only this time window in the VCD, e.g. 10us:25us (units ps, ns, us, ms, s; none: ns)")
        ("vcd-scope", po::value(&o.vcd_scope)->value_name("PATTERN"), "only scopes matching this glob in the VCD, e.g. 'kpu.tile_0.*'")
        ("trace", po::value(&o.trace_path)->value_name("FILE"), "write a Chrome trace-event JSON timeline (open in Perfetto or chrome://tracing)")
        ("report", po::value(&o.report_path)->value_name("FILE"),
         "write the per-layer report as CSV: per source layer of the model, its cycles (adding up to the run's), FLOPs, DRAM bytes, roofline bound, efficiency and what bounds it (docs/stats.md)")
        ("train-bytes", po::value<std::string>()->value_name("N"),
         "timing granularity of the data movers: bursts are booked in trains of up to N bytes (default 1024; 4 N for a mover that has been streaming alone; 0: every burst on its own, slower, finer interleaving of contending movers)")
        ("progress", po::value<double>()->implicit_value(1.0, "1")->value_name("SECONDS"),
         "while the program runs, print how far it got on stderr every SECONDS of wall time (default 1): ops done, simulated time, wall time, an estimate of the time left")
        ("max-host-memory", po::value<std::string>()->value_name("GIB"),
         "the host memory the run may take, in GiB (default: what this host has available); a run estimated to need more is refused before it starts")
        ("verbose,v", po::bool_switch(&o.verbose),
         "say how the program was bound: the kernels re-blocked to fit this config (their tiles before and after) and the compiler's replayed cycle estimate")
        ("single-thread", po::bool_switch(&single_thread),
         "no helper threads: the fabrics' arithmetic, the movers' bytes and the --check reference run on the simulation thread (same results and cycles, less CPU time; for hosts whose cores are all busy, e.g. many runs side by side)");
    std::ostringstream help;
    help << desc;
    o.help_text = help.str();

    po::variables_map vm;
    try {
        // No positional arguments: a stray word is an error, not silently ignored.
        po::store(po::command_line_parser(argc, argv).options(desc).positional({}).run(), vm);
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
    if (o.program_path.empty() && (o.check || !o.inputs_dir.empty() || !o.outputs_dir.empty() || !o.stats_path.empty() ||
                                   !o.vcd_path.empty() || !o.trace_path.empty() || vm.count("train-bytes") ||
                                   single_thread || vm.count("progress")))
        throw std::runtime_error(
            "--inputs, --outputs, --check, --stats, --vcd, --trace, --train-bytes, --progress and --single-thread need "
            "--program");
    if (o.program_path.empty() && !o.report_path.empty()) throw std::runtime_error("--report needs --program");
    o.single_thread = single_thread;
    if (vm.count("progress")) {
        const double seconds = vm["progress"].as<double>();
        if (!(seconds >= 0.001 && seconds <= 86400)) {
            std::ostringstream msg;
            msg << "--progress " << seconds << ": the interval must be between 0.001 and 86400 seconds";
            throw std::runtime_error(msg.str());
        }
        o.progress_s = seconds;
    }
    if (vm.count("train-bytes"))
        o.train_bytes = uint32_t(parse_whole("--train-bytes", vm["train-bytes"].as<std::string>(), 1u << 30));
    if (vm.count("max-host-memory")) o.max_host_bytes = hw::parse_host_memory_limit(vm["max-host-memory"].as<std::string>());
    if (vm.count("seed"))
        o.seed = parse_whole("--seed", vm["seed"].as<std::string>(), std::numeric_limits<uint64_t>::max());
    if (!window.empty()) std::tie(o.vcd_from_ps, o.vcd_to_ps) = parse_time_window(window);
    if ((!window.empty() || !o.vcd_scope.empty()) && o.vcd_path.empty())
        throw std::runtime_error("--vcd-window and --vcd-scope need --vcd FILE");
    return o;
}

}  // namespace kpu::cli
