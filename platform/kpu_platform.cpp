#include "platform/kpu_platform.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdlib>
#include <iomanip>
#include <map>
#include <sstream>
#include <typeindex>
#include <typeinfo>

#include <cxxabi.h>

#include "compiler/binder.h"
#include "compiler/kpu_format.h"

namespace kpu::platform {

namespace {

/// The copy helper is woken once this many bytes of copies wait for it. Waking it costs the
/// simulation thread a system call for every copy job, and a program's copy jobs are many and
/// small (t64 1024^3: thousands of some 30 KiB); below this, the thread that waits for a copy
/// runs it. 256 KiB is the fastest of the thresholds from 64 KiB to 4 MiB (bench-e2e, t64 1024^3).
constexpr uint64_t kCopyWakeBytes = 256 << 10;

/// "kpu::model::L2Bank" -> "l2_bank": the class without its namespaces, an underscore
/// before each capital that follows a lower-case letter or a digit, all lower case.
std::string kind_of(const sc_core::sc_module& module) {
    const char* mangled = typeid(module).name();
    int status = 0;
    std::unique_ptr<char, void (*)(void*)> demangled(abi::__cxa_demangle(mangled, nullptr, nullptr, &status),
                                                     std::free);
    std::string name = status == 0 && demangled ? demangled.get() : mangled;
    if (const auto colon = name.rfind("::"); colon != std::string::npos) name = name.substr(colon + 2);
    std::string kind;
    for (size_t i = 0; i < name.size(); ++i) {
        const auto c = static_cast<unsigned char>(name[i]);
        const auto before = i ? static_cast<unsigned char>(name[i - 1]) : '\0';
        if (std::isupper(c) && (std::islower(before) || std::isdigit(before))) kind += '_';
        kind += char(std::tolower(c));
    }
    return kind;
}

ModuleCounts count_tree(std::vector<const sc_core::sc_object*> level) {
    ModuleCounts c;
    std::map<std::type_index, size_t> row;  // class -> index into c.kinds (demangled once per class)
    while (!level.empty()) {
        std::vector<const sc_core::sc_object*> next;
        for (const sc_core::sc_object* object : level) {
            if (const auto* module = dynamic_cast<const sc_core::sc_module*>(object)) {
                auto [it, added] = row.emplace(typeid(*module), c.kinds.size());
                if (added) c.kinds.push_back({kind_of(*module), 0});
                ++c.kinds[it->second].second;
            }
            for (const sc_core::sc_object* child : object->get_child_objects()) next.push_back(child);
        }
        level = std::move(next);
    }
    return c;
}

/// The options with the quantum raised to 1.25 x the config's mover window where 1 us is too
/// short: a mover's finite buffer is a quantum ahead of its completions, and it must not be
/// what limits a transfer's throughput (docs/models.md, Temporal decoupling).
PlatformOptions with_mover_window(PlatformOptions options, const hw::Config& config) {
    const sc_core::sc_time window(1.25 * hw::derive(config).mover_window_s, sc_core::SC_SEC);
    if (window > options.quantum) options.quantum = window;
    return options;
}

}  // namespace

uint64_t ModuleCounts::of(const std::string& kind) const {
    for (const auto& [k, n] : kinds)
        if (k == kind) return n;
    return 0;
}

uint64_t ModuleCounts::total() const {
    uint64_t n = 0;
    for (const auto& [kind, count] : kinds) n += count;
    return n;
}

ModuleCounts count_modules(const sc_core::sc_object& root) { return count_tree({&root}); }

ModuleCounts count_modules() {
    const auto& top = sc_core::sc_get_top_level_objects();
    return count_tree({top.begin(), top.end()});
}

std::string format_counts(const ModuleCounts& c) {
    std::ostringstream out;
    for (const auto& [kind, n] : c.kinds) out << "  " << std::left << std::setw(18) << kind << n << "\n";
    out << "  " << std::left << std::setw(18) << "total" << c.total() << "\n";
    return out.str();
}

KpuPlatform::KpuPlatform(sc_core::sc_module_name name, const hw::Config& config, const PlatformOptions& options)
    : sc_core::sc_module(name),
      host_socket("host_socket"),
      irq("irq"),
      config_(config),
      map_(config_),
      options_(with_mover_window(options, config)),
      wiring_(options.check_protocol) {
    noc_ = std::make_unique<model::Interconnect>("noc", config_, map_);
    // The interconnect's output ports: DRAM channels first, then one per tile (decoder order).
    for (uint32_t c = 0; c < config_.dram.count; ++c) {
        const std::string n = "dram_" + std::to_string(c);
        dram_.push_back(std::make_unique<model::DramChannel>(n.c_str(), config_, map_, c, &pages_));
        wiring_.target(*noc_, dram_.back()->socket, n);
    }
    for (uint32_t t = 0; t < config_.compute_tiles; ++t) {
        const std::string n = "tile_" + std::to_string(t);
        tiles_.push_back(std::make_unique<ComputeTile>(n.c_str(), config_, map_, t, options_, pages_));
        model::TileSwitch& sw = tiles_.back()->tile_switch();
        wiring_.initiator(noc_->initiator_socket, sw, model::AddressDecoder::kChip, n + "_downlink");
        wiring_.initiator(sw.initiator_socket, *noc_, t, n + "_uplink");
    }
    for (uint32_t d = 0; d < config_.dma.count; ++d) {
        const std::string n = "dma_" + std::to_string(d);
        dma_.push_back(std::make_unique<model::DmaEngine>(n.c_str(), config_, map_, options_.quantum));
        dma_.back()->set_dmi(options_.mover_dmi);
        dma_.back()->set_train_bytes(options_.train_bytes);
        wiring_.initiator(dma_.back()->socket, *noc_, model::AddressDecoder::kChip, n);
    }

    host_ = std::make_unique<HostInterface>("host", map_.dram_size(), config.dram.interleave_bytes,
                                            [this](uint64_t addr, uint64_t size) { start_program(addr, size); });
    host_socket.bind(host_->socket);
    host_->irq(irq);
    wiring_.initiator(host_->device_socket, *noc_, model::AddressDecoder::kChip, "host");
    sequencer_ =
        std::make_unique<model::Sequencer>("sequencer", [this](const compiler::BoundOp& op) { return dispatch(op); });
    auto report = [this](const model::Completion& c) { sequencer_->complete(uint32_t(c.id), c.ok(), &c.start); };
    for (auto& d : dma_) d->set_completion_callback(report);
    if (options_.helper_threads) {
        compute_helper_ = std::make_unique<model::HelperThread>();
        copy_helper_ = std::make_unique<model::HelperThread>(kCopyWakeBytes);
        host_->set_helper(copy_helper_.get());
    }
    for (auto& d : dma_) d->set_helper(copy_helper_.get());
    for (auto& t : tiles_) {
        t->fabric().set_helper(compute_helper_.get());
        t->vector().set_helper(compute_helper_.get());
        for (uint32_t u = 0; u < t->block_mover_count(); ++u) t->block_mover(u).set_helper(copy_helper_.get());
        for (uint32_t u = 0; u < t->streamer_count(); ++u) t->streamer(u).set_helper(copy_helper_.get());
        for (uint32_t u = 0; u < t->block_mover_count(); ++u) t->block_mover(u).set_completion_callback(report);
        for (uint32_t u = 0; u < t->streamer_count(); ++u) t->streamer(u).set_completion_callback(report);
        // The compute engines report with the time they began the op.
        const auto compute_done = [this](uint64_t id, bool ok, const sc_core::sc_time& started) {
            sequencer_->complete(uint32_t(id), ok, &started);
        };
        t->fabric().on_complete(compute_done);
        t->vector().on_complete(compute_done);
    }
    SC_HAS_PROCESS(KpuPlatform);
    SC_METHOD(program_ended);
    sensitive << sequencer_->finished();
    dont_initialize();
}

void KpuPlatform::start_program(uint64_t addr, uint64_t size) {
    started_at_ = sc_core::sc_time_stamp();
    auto fail = [&](HostError error, const std::string& message) {
        finished_at_ = started_at_;
        host_->finish(error, message, 0);
    };
    std::string image(size, '\0');
    hw::Location where;
    if (size == 0) return fail(HostError::BadImage, "PROGRAM_SIZE is 0: no program image");
    if (!map_.decode(addr, 1, where) || where.level != hw::Level::Dram || addr + size > map_.dram_size() ||
        addr + size < addr || !read(addr, image.data(), size)) {
        std::ostringstream msg;
        msg << std::hex << "program image [0x" << addr << ", 0x" << addr + size << ")" << std::dec << " (" << size
            << " bytes) is not inside device DRAM [0, 0x" << std::hex << map_.dram_size()
            << ") (PROGRAM_ADDR is a device address; the host writes that address at 0x" << kMemoryWindow
            << " + it)";
        return fail(HostError::BadImage, msg.str());
    }
    compiler::Program program;
    try {
        program = compiler::read_kpu(image, "program image");
    } catch (const std::exception& e) {
        return fail(HostError::BadImage, e.what());
    }
    try {
        program_ = compiler::bind(program, config_);
    } catch (const std::exception& e) {
        return fail(HostError::DoesNotFit, e.what());
    }
    sequencer_->start(program_);
}

bool KpuPlatform::dispatch(const compiler::BoundOp& op) {
    switch (op.engine) {
        case compiler::EngineKind::Dma: return dma(op.unit).try_submit(op.move);
        case compiler::EngineKind::BlockMover: return block_mover(op.tile, op.unit).try_submit(op.move);
        case compiler::EngineKind::Streamer: return streamer(op.tile, op.unit).try_submit(op.move);
        case compiler::EngineKind::Fabric: {
            model::SystolicFabric::Command command;
            command.id = op.id;
            command.drain = op.kind == compiler::BoundOp::Kind::Drain;
            command.matmul = op.matmul;
            command.drain_command = op.drain;
            tile(op.tile).fabric().submit(command);
            return true;
        }
        case compiler::EngineKind::Vector:
            tile(op.tile).vector().submit({op.id, op.vector});
            return true;
    }
    return false;
}

void KpuPlatform::program_ended() {
    finished_at_ = sc_core::sc_time_stamp();
    if (copy_helper_) copy_helper_->wait_all();  // what the host reads after the interrupt is in place
    const auto cycles = uint64_t(std::llround((finished_at_ - started_at_).to_seconds() * config_.clocks.fabric_hz));
    if (sequencer_->succeeded())
        host_->finish(HostError::None, "", cycles);
    else
        host_->finish(sequencer_->stuck() ? HostError::Stuck : HostError::OpFailed, sequencer_->error(), cycles);
}

std::string KpuPlatform::stuck_report() const { return sequencer_->stuck_report(); }

KpuPlatform::~KpuPlatform() {
    // Newest first: SystemC 2.3's port and export registries look for the object being
    // removed from their back, so this keeps their part O(1) per socket. Its module registry
    // looks from the front, so teardown of a datacenter config still costs about 1 s inside
    // SystemC (kpu-sim does not tear down at exit; see docs/benchmarks.md).
    // The helpers first: a job still queued (the simulation stopped mid-op) uses a fabric or
    // a memory page.
    copy_helper_.reset();
    compute_helper_.reset();
    sequencer_.reset();
    host_.reset();
    destroy_backwards(dma_);
    destroy_backwards(tiles_);
    destroy_backwards(dram_);
}

ModuleCounts KpuPlatform::counts() const { return count_modules(*this); }

model::DmaEngine& KpuPlatform::dma(uint32_t unit) {
    check_index(*this, "DMA engine", unit, dma_.size());
    return *dma_[unit];
}

model::BlockMover& KpuPlatform::block_mover(uint32_t tile_index, uint32_t unit) {
    return tile(tile_index).block_mover(unit);
}

model::Streamer& KpuPlatform::streamer(uint32_t tile_index, uint32_t unit) { return tile(tile_index).streamer(unit); }

ComputeTile& KpuPlatform::tile(uint32_t index) {
    check_index(*this, "compute tile", index, tiles_.size());
    return *tiles_[index];
}

model::DramChannel& KpuPlatform::dram_channel(uint32_t channel) {
    check_index(*this, "DRAM channel", channel, dram_.size());
    return *dram_[channel];
}

model::Memory& KpuPlatform::memory(const hw::Location& where) {
    switch (where.level) {
        case hw::Level::Dram: return *dram_[where.index];
        case hw::Level::L3: return tiles_[where.tile]->l3();
        case hw::Level::L2: return tiles_[where.tile]->l2(where.index);
        case hw::Level::L1: return tiles_[where.tile]->l1(where.index);
    }
    return *dram_[0];
}

bool KpuPlatform::debug_access(tlm::tlm_command command, uint64_t addr, uint8_t* data, size_t len) {
    if (copy_helper_) copy_helper_->wait_all();  // the bytes of transfers handed over, in place
    // Straight to the memory's transport_dbg, not through the interconnect's sockets: SystemC
    // resolves port bindings only at the end of elaboration, and the host and the tests load
    // device memory before sc_start.
    tlm::tlm_generic_payload trans;
    while (len) {
        // One debug transaction per DRAM interleave block or memory instance: the largest
        // range one target holds contiguously.
        uint64_t piece = std::min<uint64_t>(len, 1u << 30);
        hw::Location where;
        if (map_.decode(addr, 1, where)) {
            const uint64_t end = where.level == hw::Level::Dram
                                     ? (addr / config_.dram.interleave_bytes + 1) * config_.dram.interleave_bytes
                                     : addr - where.offset + where.capacity;
            piece = std::min(piece, end - addr);
        }
        if (!map_.decode(addr, piece, where)) {
            std::ostringstream msg;
            msg << name() << ": backdoor " << (command == tlm::TLM_READ_COMMAND ? "read" : "write") << " stopped at 0x"
                << std::hex << addr << std::dec << ": " << map_.explain(addr, piece);
            SC_REPORT_WARNING("kpu/platform", msg.str().c_str());
            return false;
        }
        trans.set_command(command);
        trans.set_address(where.offset);
        trans.set_data_ptr(data);
        trans.set_data_length(unsigned(piece));
        trans.set_streaming_width(unsigned(piece));
        trans.set_response_status(tlm::TLM_INCOMPLETE_RESPONSE);
        if (memory(where).transport_dbg(trans) != piece) return false;  // the memory reported why
        addr += piece, data += piece, len -= piece;
    }
    return true;
}

bool KpuPlatform::write(uint64_t addr, const void* data, size_t len) {
    return debug_access(tlm::TLM_WRITE_COMMAND, addr, static_cast<uint8_t*>(const_cast<void*>(data)), len);
}

bool KpuPlatform::read(uint64_t addr, void* data, size_t len) {
    return debug_access(tlm::TLM_READ_COMMAND, addr, static_cast<uint8_t*>(data), len);
}

uint8_t* KpuPlatform::l1_pointer(uint64_t addr, size_t len) {
    hw::Location where;
    if (map_.decode(addr, len, where) && where.level == hw::Level::L1)
        if (uint8_t* p = tiles_[where.tile]->l1(where.index).direct_pointer(where.offset, len)) return p;
    std::ostringstream msg;
    msg << name() << ": l1_pointer: ";
    if (!map_.decode(addr, len, where))
        msg << map_.explain(addr, len);
    else
        msg << std::hex << "[0x" << addr << ", 0x" << addr + len << ")" << std::dec << " is in "
            << hw::to_string(where.level) << ", not inside one L1 buffer";
    SC_REPORT_WARNING("kpu/platform", msg.str().c_str());
    return nullptr;
}

std::vector<const model::ProtocolChecker*> KpuPlatform::checkers() const {
    std::vector<const model::ProtocolChecker*> all;
    for (const auto& c : wiring_.checkers()) all.push_back(c.get());
    for (const auto& t : tiles_)
        for (const auto& c : t->wiring().checkers()) all.push_back(c.get());
    return all;
}

}  // namespace kpu::platform
