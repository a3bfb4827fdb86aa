// A virtual platform in miniature: a CPU-like TLM initiator drives a KpuPlatform the way a
// driver on an SoC does, through the host socket only (registers and the DRAM window), and
// waits for the interrupt. docs/integration.md explains every step.
//
//   kpu-vp-example CONFIG.json [PROGRAM.kpu]
//
// Without PROGRAM.kpu it compiles a built-in matmul with bias and relu for CONFIG. Inputs are
// deterministic pseudo-random numbers; every output is checked against a plain C++ loop in
// double precision. Exit code 0 when the device finished without error and every output
// element is within the fp32 accumulation bound.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iterator>
#include <map>
#include <string>
#include <vector>

#include <systemc>
#include <tlm>
#include <tlm_utils/simple_initiator_socket.h>

#include "compiler/binder.h"
#include "compiler/generate.h"
#include "compiler/graph_json.h"
#include "compiler/kpu_format.h"
#include "hardware/config.h"
#include "platform/kpu_platform.h"
#include "sc_main/reference.h"

using kpu::platform::HostRegister;

namespace {

/// The CPU: one 32-bit TLM initiator (the host socket's BUSWIDTH is 32) and an interrupt input.
/// It does 32-bit register accesses and 64-byte "cache line" accesses to the DRAM window.
struct Cpu : sc_core::sc_module {
    tlm_utils::simple_initiator_socket<Cpu, 32> socket{"socket"};
    sc_core::sc_in<bool> irq{"irq"};

    struct Buffer {
        std::string name;
        uint64_t device_addr;
        std::vector<uint8_t> bytes;
    };
    std::vector<Buffer> inputs;   ///< written before START (inputs, constants, the image last)
    std::vector<Buffer> outputs;  ///< read after the interrupt
    uint64_t image_addr = 0, image_size = 0;
    uint64_t status = 0, error = 0, cycles = 0;
    bool ok = false;

    SC_HAS_PROCESS(Cpu);
    explicit Cpu(sc_core::sc_module_name name) : sc_module(name) { SC_THREAD(run); }

    bool access(tlm::tlm_command command, uint64_t addr, void* data, unsigned len) {
        tlm::tlm_generic_payload trans;
        sc_core::sc_time delay = sc_core::SC_ZERO_TIME;
        trans.set_command(command);
        trans.set_address(addr);
        trans.set_data_ptr(static_cast<unsigned char*>(data));
        trans.set_data_length(len);
        trans.set_streaming_width(len);
        trans.set_response_status(tlm::TLM_INCOMPLETE_RESPONSE);
        socket->b_transport(trans, delay);
        wait(delay);  // the window charges what the device path costs; registers cost nothing
        if (trans.is_response_error())
            std::fprintf(stderr, "cpu: %s at 0x%llx (%u bytes): %s\n", command == tlm::TLM_READ_COMMAND ? "read" : "write",
                         (unsigned long long)addr, len, trans.get_response_string().c_str());
        return trans.is_response_ok();
    }
    // Registers are 64 bits wide; a 32-bit CPU accesses the low half at the offset, the high
    // half at offset + 4. Little-endian, like everything on the host socket.
    uint32_t read32(uint64_t offset) {
        uint32_t value = 0;
        access(tlm::TLM_READ_COMMAND, offset, &value, 4);
        return value;
    }
    void write32(uint64_t offset, uint32_t value) { access(tlm::TLM_WRITE_COMMAND, offset, &value, 4); }
    uint64_t read64(HostRegister reg) {
        const uint64_t lo = read32(uint64_t(reg));
        return lo | uint64_t(read32(uint64_t(reg) + 4)) << 32;
    }
    void write64(HostRegister reg, uint64_t value) {
        write32(uint64_t(reg), uint32_t(value));
        write32(uint64_t(reg) + 4, uint32_t(value >> 32));
    }
    /// Device DRAM through the window (host offset kMemoryWindow + device address), one
    /// 64-byte line at a time, as a CPU's caches would write it back (the buffers start on
    /// interleave boundaries, so the lines are aligned).
    bool copy(Buffer& buffer, bool to_device) {
        for (size_t off = 0; off < buffer.bytes.size(); off += 64) {
            const unsigned n = unsigned(std::min<size_t>(64, buffer.bytes.size() - off));
            if (!access(to_device ? tlm::TLM_WRITE_COMMAND : tlm::TLM_READ_COMMAND,
                        kpu::platform::kMemoryWindow + buffer.device_addr + off, &buffer.bytes[off], n))
                return false;
        }
        return true;
    }

    void run() {
        if (read32(uint64_t(HostRegister::Id)) != kpu::platform::kKpuId) {
            std::fprintf(stderr, "cpu: no KPU at the host socket\n");
            return;
        }
        for (Buffer& b : inputs)
            if (!copy(b, true)) return;
        write64(HostRegister::ProgramAddr, image_addr);
        write64(HostRegister::ProgramSize, image_size);
        write32(uint64_t(HostRegister::Control), uint32_t(kpu::platform::kControlStart));
        // An image the device cannot read or bind fails at once: STATUS is already ERROR here.
        // (ERROR 5, busy, would mean a run was still going: this START was refused.)
        if (read64(HostRegister::Error) == uint64_t(kpu::platform::HostError::Busy)) {
            std::fprintf(stderr, "cpu: START refused, the device is busy\n");
            return;
        }
        while (!irq.read()) wait(irq.posedge_event());
        status = read64(HostRegister::Status);
        error = read64(HostRegister::Error);
        cycles = read64(HostRegister::Cycles);
        ok = status == uint64_t(kpu::platform::HostStatus::Done);
        if (ok)
            for (Buffer& b : outputs)
                if (!copy(b, false)) ok = false;
        // Lowers irq. STATUS stays DONE (or ERROR) until the next START.
        write32(uint64_t(HostRegister::Control), uint32_t(kpu::platform::kControlIrqAck));
    }
};

// C = A @ B + bias, relu: 96 x 80 x 72, every dimension ragged on a 16 x 16 or 8 x 8 fabric.
const char* kBuiltinGraph = R"({"op": "matmul",
  "A": {"shape": [96, 72], "dtype": "float32"}, "B": {"shape": [72, 80], "dtype": "float32"},
  "bias": {"shape": [80], "dtype": "float32"}, "C": {"shape": [96, 80], "dtype": "float32"},
  "activation": "relu"})";

/// Deterministic inputs in [-1, 1).
std::vector<float> pseudo_random(size_t count, uint64_t seed) {
    std::vector<float> v(count);
    uint64_t x = seed * 0x9E3779B97F4A7C15ull + 1;
    for (float& f : v) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        f = float(double(x >> 40) / double(1ull << 23) - 1.0);
    }
    return v;
}

std::string read_file(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    if (!in) throw std::runtime_error("cannot open " + path);
    return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

}  // namespace

int sc_main(int argc, char* argv[]) {
    if (argc < 2 || argc > 3) {
        std::fprintf(stderr, "usage: %s CONFIG.json [PROGRAM.kpu]\n", argv[0]);
        return 2;
    }
    try {
        const kpu::hw::Config config = kpu::hw::load_config(argv[1]);
        // The program image: a .kpu from kpu-compile, or the built-in graph compiled here.
        std::string image;
        kpu::compiler::Program program;
        if (argc == 3) {
            image = read_file(argv[2]);
            program = kpu::compiler::read_kpu(image, argv[2]);
        } else {
            program = kpu::compiler::compile(kpu::compiler::parse_graph(kBuiltinGraph, "built-in graph"), config);
            image = kpu::compiler::write_kpu(program);
        }
        // Driver side: where the device will put every tensor (it binds the same image to the
        // same config at START; the binder is deterministic). Equivalent to reading the
        // "tensors" of `kpu-compile --bind --config CONFIG PROGRAM.kpu -o bound.json`.
        const kpu::compiler::BoundProgram bound = kpu::compiler::bind(program, config);

        Cpu cpu("cpu");
        std::map<std::string, std::vector<float>> fed;
        uint64_t seed = 1;
        for (const auto& tensor : bound.tensors) {
            if (tensor.role == "input" || tensor.role == "constant") {
                std::vector<float> values = pseudo_random(tensor.bytes / 4, seed++);
                Cpu::Buffer b{tensor.name, tensor.dram_addr, std::vector<uint8_t>(tensor.bytes)};
                std::memcpy(b.bytes.data(), values.data(), tensor.bytes);  // host byte order: little-endian
                cpu.inputs.push_back(std::move(b));
                fed[tensor.name] = std::move(values);
            } else {  // outputs, and intermediates: each op is checked on what the hardware computed
                cpu.outputs.push_back({tensor.name, tensor.dram_addr, std::vector<uint8_t>(tensor.bytes)});
            }
        }
        // The image after the last tensor, on an interleave boundary (where kpu-sim puts it).
        cpu.image_addr = kpu::compiler::image_address(bound, config, image.size());
        cpu.image_size = image.size();
        cpu.inputs.push_back({"the program image", cpu.image_addr, std::vector<uint8_t>(image.begin(), image.end())});

        kpu::platform::KpuPlatform kpu("kpu", config);
        sc_core::sc_signal<bool> irq("irq");
        cpu.socket.bind(kpu.host_socket);
        kpu.irq(irq);
        cpu.irq(irq);
        sc_core::sc_start();

        std::printf("config %s: %zu tensors, image %zu bytes at DRAM 0x%llx\n", config.name.c_str(), bound.tensors.size(),
                    image.size(), (unsigned long long)cpu.image_addr);
        if (!cpu.ok) {
            std::printf("FAIL: STATUS %llu, ERROR %llu: %s\n", (unsigned long long)cpu.status,
                        (unsigned long long)cpu.error, kpu.host_error_message().c_str());
            return 1;
        }
        // The independent reference kpu-sim --check uses (kpu_reference). Given the tensors the
        // hardware computed beside the inputs, it evaluates each op from the operands the
        // hardware used, so every op is checked with one op's fp32 tolerance (given only the
        // inputs, it carries each op's error bound down the chain, which loosens with depth).
        std::map<std::string, std::vector<float>> computed;
        for (const Cpu::Buffer& out : cpu.outputs) {
            std::vector<float>& values = computed[out.name];
            values.resize(out.bytes.size() / 4);
            std::memcpy(values.data(), out.bytes.data(), out.bytes.size());
            fed[out.name] = values;
        }
        const auto expected = kpu::cli::run_reference(program.graph, fed);
        bool pass = true;
        for (const auto& tensor : bound.tensors) {
            const auto got = computed.find(tensor.name);
            if (got == computed.end()) continue;
            const kpu::cli::CheckResult r = kpu::cli::check_tensor(got->second, expected.at(tensor.name), tensor.shape);
            std::printf("%s %s (%zu elements at DRAM 0x%llx): %llu outside the fp32 bound, worst error %.3g "
                        "(tolerance %.3g)\n",
                        tensor.role.c_str(), tensor.name.c_str(), got->second.size(), (unsigned long long)tensor.dram_addr,
                        (unsigned long long)r.mismatches, r.error, r.tolerance);
            pass = pass && r.ok;
        }
        std::printf("CYCLES %llu (fabric cycles, START to interrupt), simulated time %s\n",
                    (unsigned long long)cpu.cycles, sc_core::sc_time_stamp().to_string().c_str());
        std::printf("%s\n", pass ? "PASS" : "FAIL");
        return pass ? 0 : 1;
    } catch (const std::exception& e) {
        std::fprintf(stderr, "kpu-vp-example: %s\n", e.what());
        return 1;
    }
}
