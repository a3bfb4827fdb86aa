// Driving the movers of a KpuPlatform from a test: transfer descriptors, a driver thread that
// runs a script submitting them and records every completion by id, and the figures the
// tests check (protocol violations, picoseconds, bandwidth).
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <systemc>

#include "hardware/transfer.h"
#include "platform/kpu_platform.h"

namespace kpu::test {

inline hw::Transfer transfer(uint64_t id, uint64_t src, uint64_t dst, uint32_t rows, uint32_t row_bytes,
                             uint64_t src_stride, uint64_t dst_stride,
                             hw::Transform transform = hw::Transform::Identity) {
    hw::Transfer t;
    t.id = id, t.src = src, t.dst = dst, t.rows = rows, t.row_bytes = row_bytes;
    t.src_stride = src_stride, t.dst_stride = dst_stride, t.transform = transform;
    return t;
}

inline hw::Transfer linear(uint64_t id, uint64_t src, uint64_t dst, uint32_t bytes) {
    return transfer(id, src, dst, 1, bytes, bytes, bytes);
}

/// Runs `script` in an SC_THREAD; completions of every mover it uses land in done[id].
struct Driver : sc_core::sc_module {
    std::function<void(Driver&)> script;
    std::map<uint64_t, model::Completion> done;

    Driver(sc_core::sc_module_name name, std::function<void(Driver&)> body)
        : sc_core::sc_module(name), script(std::move(body)) {
        SC_HAS_PROCESS(Driver);
        SC_THREAD(run);
    }
    void run() { script(*this); }

    /// Routes the mover's completions into done (once per mover).
    void watch(model::Mover& m) {
        m.set_completion_callback([this](const model::Completion& c) { done[c.id] = c; });
    }
    /// Submits and waits for this id's completion.
    model::Completion run(model::Mover& m, const hw::Transfer& t) {
        watch(m);
        m.submit(t);
        while (!done.count(t.id)) sc_core::wait(m.completion_event());
        return done[t.id];
    }
    /// Waits until every id in `ids` has completed on `m`.
    void wait_all(model::Mover& m, const std::vector<uint64_t>& ids) {
        for (uint64_t id : ids)
            while (!done.count(id)) sc_core::wait(m.completion_event());
    }
};

/// Every protocol checker of the platform saw traffic and no violation.
inline std::string checker_violations(const platform::KpuPlatform& p) {
    std::string all;
    for (const auto* c : p.checkers())
        for (const auto& v : c->violations()) all += v + "\n";
    return all;
}

inline double ps(const sc_core::sc_time& t) { return t.to_seconds() * 1e12; }

/// Bytes per second of a completion.
inline double bandwidth(const model::Completion& c) { return double(c.bytes) / (c.end - c.start).to_seconds(); }

}  // namespace kpu::test
