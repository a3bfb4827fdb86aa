#include "models/mover.h"

#include <sysc/kernel/sc_dynamic_processes.h>

#include <algorithm>
#include <cstring>
#include <sstream>

#include "models/burst_walk.h"
#include "models/paged_storage.h"

namespace kpu::model {

using sc_core::sc_time;

namespace {

/// The smallest DMI region a mover can be granted: a DRAM interleave block, an L1 buffer, an
/// L2 bank or a memory page (DmiRegions' granule).
uint64_t smallest_region(const hw::Config& config) {
    return std::min({config.dram.interleave_bytes, config.l1.capacity_bytes, config.l2.capacity_bytes,
                     uint64_t(PagedStorage::kMaxPageBytes)});
}

}  // namespace

Mover::Mover(sc_core::sc_module_name name, const char* kind, const hw::Engine& engine, const hw::Config& config,
             const hw::AddressMap& map, const sc_time& quantum)
    : sc_core::sc_module(name),
      socket("socket"),
      kind_(kind),
      config_(config),
      map_(map),
      bandwidth_(engine.bandwidth_bytes_per_s),
      queue_depth_(std::max<uint32_t>(engine.queue_depth, 1)),
      contention_(new ContentionExtension),
      booker_(engine.bandwidth_bytes_per_s, time_.ticks(), time_.to_fs(quantum), &trans_),
      dmi_(socket, std::max<uint64_t>(smallest_region(config), 64)) {
    socket.register_nb_transport_bw(this, &Mover::nb_transport_bw);
    socket.register_invalidate_direct_mem_ptr(this, &Mover::invalidate_direct_mem_ptr);
    trans_.set_extension(contention_);
}

void Mover::enqueue(const hw::Transfer& transfer) {
    queue_.push_back(transfer);
    ++in_flight_;
    Events& e = events();
    if (!running_) {
        // Named after the mover (a process spawned while the simulation runs belongs to the
        // process that spawned it, not to this module). run() starts in the next delta
        // cycle, as a thread waiting for the submit event would.
        sc_core::sc_spawn_options thread;
        thread.dont_initialize();
        thread.set_sensitivity(&e.submit);
        sc_core::sc_spawn([this] { run(); }, sc_core::sc_gen_unique_name((std::string(basename()) + "_run").c_str()),
                          &thread);
        sc_core::sc_spawn_options method;
        method.spawn_method();
        method.dont_initialize();
        method.set_sensitivity(&e.due);
        sc_core::sc_spawn([this] { deliver(); },
                          sc_core::sc_gen_unique_name((std::string(basename()) + "_deliver").c_str()), &method);
        running_ = true;
    }
    e.submit.notify(sc_core::SC_ZERO_TIME);
}

bool Mover::try_submit(const hw::Transfer& transfer) {
    if (!can_accept()) return false;
    enqueue(transfer);
    return true;
}

bool Mover::submit(const hw::Transfer& transfer) {
    const bool in_thread = sc_core::sc_get_current_process_handle().proc_kind() == sc_core::SC_THREAD_PROC_ ||
                           sc_core::sc_get_current_process_handle().proc_kind() == sc_core::SC_CTHREAD_PROC_;
    while (in_thread && !can_accept()) sc_core::wait(events().completion);
    if (try_submit(transfer)) return true;
    std::ostringstream msg;
    msg << name() << ": queue full (" << queue_depth_ << " descriptors), transfer " << transfer.id
        << " not queued; wait for accept_event() or use can_accept()";
    SC_REPORT_WARNING("kpu/mover", msg.str().c_str());
    return false;
}

void Mover::run() {
    for (;;) {
        // Idle: in step with the kernel, and what it knew of the ports is stale.
        while (queue_.empty()) sc_core::wait(events_->submit), booker_.idle();
        const hw::Transfer transfer = queue_.front();
        queue_.pop_front();
        execute(transfer);
    }
}

uint32_t Mover::burst_of(uint64_t addr) const {
    hw::Location where;
    if (!map_.decode(addr, 1, where))  // the burst will fail with a report; any size will do
        return std::min({config_.dram.burst_bytes, config_.l3.burst_bytes, config_.l2.burst_bytes,
                         config_.l1.burst_bytes});
    switch (where.level) {
        case hw::Level::Dram: return config_.dram.burst_bytes;
        case hw::Level::L3: return config_.l3.burst_bytes;
        case hw::Level::L2: return config_.l2.burst_bytes;
        case hw::Level::L1: return config_.l1.burst_bytes;
    }
    return config_.dram.burst_bytes;
}

void Mover::execute(const hw::Transfer& t) {
    Job job;
    job.id = t.id;
    booker_.set_now(time_.now());
    job.start = job.done = booker_.next_issue();
    if (const char* problem = transfer_problem(t)) {
        std::ostringstream msg;
        msg << name() << ": transfer " << t.id << " rejected: " << problem << " (src 0x" << std::hex << t.src
            << ", dst 0x" << t.dst << std::dec << ", " << t.rows << " rows of " << t.row_bytes << " bytes, strides "
            << t.src_stride << "/" << t.dst_stride << ")";
        SC_REPORT_WARNING("kpu/mover", msg.str().c_str());
        finish(job, TransferStatus::BadDescriptor);
        return;
    }
    const uint32_t burst = std::min(burst_of(t.src), burst_of(t.dst));
    booker_.set_burst(burst);
    copies_.reserve(std::min<uint32_t>(t.rows, 1024));  // about one stretch per row
    const bool ok = !t.plain() ? copy_gather(t, burst, job)
                    : t.transform == hw::Transform::Identity ? copy_identity(t, burst, job)
                                                             : copy_transpose(t, burst, job);
    finish(job, ok ? TransferStatus::Ok : TransferStatus::AccessError);
}

bool Mover::access(Job& job, tlm::tlm_command command, uint64_t addr, uint8_t* data, uint32_t bytes, Fs at,
                   Fs& done) {
    copies_.settle();
    const Fs now = time_.now();
    trans_.set_command(command);
    trans_.set_address(addr);
    trans_.set_data_ptr(data);
    trans_.set_data_length(bytes);
    trans_.set_streaming_width(bytes);
    trans_.set_byte_enable_ptr(nullptr);
    trans_.set_byte_enable_length(0);
    trans_.set_dmi_allowed(false);
    trans_.set_response_status(tlm::TLM_INCOMPLETE_RESPONSE);
    if (command == tlm::TLM_READ_COMMAND) booker_.clear_contended();  // per burst: read + write
    contention_->contended = false;
    sc_time delay = time_.until(at, now);
    socket->b_transport(trans_, delay);
    if (contention_->contended) booker_.mark_contended();
    ++stats_.transactions;
    if (!trans_.is_response_ok()) {
        std::ostringstream msg;
        msg << name() << ": transfer " << job.id << " failed: " << (command == tlm::TLM_READ_COMMAND ? "read" : "write")
            << " of " << bytes << " bytes at 0x" << std::hex << addr << std::dec << " answered "
            << trans_.get_response_string();
        SC_REPORT_WARNING("kpu/mover", msg.str().c_str());
        return false;
    }
    done = now + time_.to_fs(delay);
    return true;
}

const DmiRegion* Mover::region(uint64_t addr, uint32_t bytes) {
    if (!dmi_enabled_) return nullptr;
    if (const DmiRegion* r = dmi_.known(addr, bytes)) return r->timed() ? r : nullptr;
    hw::Location where;
    if (!map_.decode(addr, bytes, where)) return nullptr;  // b_transport reports it
    const DmiRegion* r = dmi_.ask_timed(addr, bytes);
    stats_.dmi_grants = dmi_.grants();
    return r;
}

bool Mover::timed(Job& job, tlm::tlm_command command, uint64_t addr, uint8_t* data, uint32_t bytes, Fs at,
                  Fs& done) {
    const DmiRegion* r = region(addr, bytes);
    if (!r) return access(job, command, addr, data, bytes, at, done);
    if (command == tlm::TLM_READ_COMMAND) booker_.clear_contended();
    done = booker_.book(r->path, at, bytes, command == tlm::TLM_WRITE_COMMAND);
    copies_.settle();
    uint8_t* mem = r->data + (addr - r->lo);
    if (command == tlm::TLM_READ_COMMAND)
        std::memcpy(data, mem, bytes);
    else
        std::memcpy(mem, data, bytes);
    ++stats_.dmi_accesses;
    return true;
}

void Mover::sync() {
    sc_core::wait(time_.until(booker_.engine_free(), booker_.now()));  // zero while contended: a delta, the other runs
    booker_.synced(time_.now());
    ++stats_.syncs;
}

void Mover::run_train(Job& job, const DmiRegion& from, const DmiRegion& to) {
    if (booker_.train_empty()) return;
    const TrainBooker::Booked train = booker_.book_train(from.path, to.path);
    if (!job.started) job.start = train.first_at, job.started = true;
    stats_.dmi_accesses += 2 * uint64_t(train.bursts);
    ++stats_.trains;
    job.bytes += train.bytes;
    pace(job, train.done, train.bytes);
}

bool Mover::copy_identity(const hw::Transfer& t, uint32_t burst, Job& job) {
    if (staging_.size() < burst) staging_.resize(burst);
    uint8_t* buffer = staging_.data();
    // Bursts whose source and destination stay in the same two DMI regions (rows of a
    // strided transfer included) gather into a train, booked at once. The regions are copies:
    // the cache's storage may move when it grants another.
    DmiRegion from, to;
    const RowWalk walk = identity_rows(t, burst);
    for (uint64_t r = 0; r < walk.rows; ++r) {
        uint64_t src = t.src + r * t.src_stride, dst = t.dst + r * t.dst_stride, left = walk.row_bytes;
        while (left) {
            const uint32_t n = burst_piece(src, dst, left, burst);
            bool direct = false;
            if (dmi_enabled_) {
                const bool same_from = from.holds(src, n), same_to = to.holds(dst, n);
                if (!same_from || !same_to) {
                    run_train(job, from, to);  // other regions, other stages
                    // A strided transfer's rows mostly change one side only (the DRAM
                    // interleave block, not the L3 page).
                    if (!same_from) {
                        const DmiRegion* r1 = region(src, n);
                        from = r1 ? *r1 : DmiRegion{};
                    }
                    if (!same_to && from.data) {
                        const DmiRegion* r2 = region(dst, n);
                        to = r2 ? *r2 : DmiRegion{};
                    }
                }
                direct = from.data && to.data;
            }
            if (direct) {
                // The bytes of the whole stretch move at once; its bursts are issued and timed
                // as trains (whole bursts, the common case, many in one step).
                const uint64_t stretch = std::min({left, from.hi - src, to.hi - dst});
                copies_.move(to.data + (dst - to.lo), from.data + (src - from.lo), stretch);
                for (uint64_t done = 0; done < stretch;) {
                    done += booker_.add(burst_piece(src + done, dst + done, stretch - done, burst), stretch - done);
                    if (booker_.train_full()) run_train(job, from, to);
                }
                src += stretch, dst += stretch, left -= stretch;
                continue;
            }
            run_train(job, from, to);
            const Fs at = issue(job, n);
            Fs read_done = 0, write_done = 0;
            if (!access(job, tlm::TLM_READ_COMMAND, src, buffer, n, at, read_done) ||
                !access(job, tlm::TLM_WRITE_COMMAND, dst, buffer, n, read_done, write_done))
                return false;
            job.bytes += n;
            pace(job, write_done, n);
            src += n, dst += n, left -= n;
        }
    }
    run_train(job, from, to);
    return true;
}

bool Mover::copy_gather(const hw::Transfer& t, uint32_t burst, Job& job) {
    // A burst of the fill byte (0, or an int8 tensor's zero point).
    if (zeros_.size() < burst || zeros_.front() != t.fill) zeros_.assign(std::max<size_t>(burst, zeros_.size()), t.fill);
    bool ok = true;
    for_each_row(t, [&](bool zero, uint64_t src, uint64_t dst) {
        if (!ok) return;
        if (!zero) {  // a row read and written as an identity copy does it, bursts and trains
            hw::Transfer row;
            row.id = t.id, row.src = src, row.dst = dst, row.rows = 1, row.row_bytes = t.row_bytes;
            ok = copy_identity(row, burst, job);
            return;
        }
        // Zero fill: the destination's bursts are written with the fill byte, nothing is read.
        for (uint64_t left = t.row_bytes; left && ok;) {
            const uint32_t n = burst_piece(dst, left, burst);
            Fs write_done = 0;
            ok = timed(job, tlm::TLM_WRITE_COMMAND, dst, zeros_.data(), n, issue(job, n), write_done);
            if (!ok) return;
            job.bytes += n;
            pace(job, write_done, n);
            dst += n, left -= n;
        }
    });
    return ok;
}

bool Mover::copy_transpose(const hw::Transfer& t, uint32_t burst, Job& job) {
    // The band's writes wait for its last read, and bands pipeline like bursts do.
    const uint32_t elem = t.elem_bytes, cols = t.row_bytes / elem;
    const uint32_t band = transpose_band(t, burst);
    if (staging_.size() < uint64_t(band) * t.row_bytes) staging_.resize(uint64_t(band) * t.row_bytes);
    if (column_.size() < uint64_t(band) * elem) column_.resize(uint64_t(band) * elem);
    for (uint32_t r0 = 0; r0 < t.rows; r0 += band) {
        const uint32_t h = std::min(band, t.rows - r0);
        Fs ready = 0;
        for (uint32_t i = 0; i < h; ++i) {
            uint64_t src = t.src + uint64_t(r0 + i) * t.src_stride, left = t.row_bytes;
            uint8_t* row = staging_.data() + uint64_t(i) * t.row_bytes;
            while (left) {
                const uint32_t n = burst_piece(src, left, burst);
                Fs read_done = 0;
                if (!timed(job, tlm::TLM_READ_COMMAND, src, row, n, issue(job, n), read_done)) return false;
                ready = std::max(ready, read_done);
                src += n, row += n, left -= n;
            }
        }
        for (uint32_t c = 0; c < cols; ++c) {
            gather_column(staging_.data(), t.row_bytes, h, c, elem, column_.data());
            uint64_t dst = t.dst + uint64_t(c) * t.dst_stride + uint64_t(r0) * elem, left = uint64_t(h) * elem;
            uint8_t* data = column_.data();
            while (left) {
                const uint32_t n = burst_piece(dst, left, burst);
                Fs write_done = 0;
                if (!timed(job, tlm::TLM_WRITE_COMMAND, dst, data, n, ready, write_done)) return false;
                job.bytes += n;
                pace(job, write_done, n);
                dst += n, data += n, left -= n;
            }
        }
    }
    return true;
}

void Mover::finish(Job& job, TransferStatus status) {
    const Fs now = time_.now();
    job.done = std::max(job.done, now);
    ++stats_.transfers;
    if (status != TransferStatus::Ok) ++stats_.failed;
    stats_.bytes += job.bytes;
    const Fs from = std::max(job.start, busy_until_);
    if (job.done > from) stats_.busy += job.done - from;
    busy_until_ = std::max(busy_until_, job.done);

    Completion c;
    c.id = job.id;
    c.status = status;
    c.start = time_.to_time(job.start);
    c.end = time_.to_time(job.done);
    c.bytes = job.bytes;
    due_.push_back({job.done, seq_++, c, copies_.finish_transfer()});
    std::push_heap(due_.begin(), due_.end(), after);
    events_->due.notify(time_.until(due_.front().done, now));
}

void Mover::deliver() {
    const Fs now = time_.now();
    while (!due_.empty() && due_.front().done <= now) {
        std::pop_heap(due_.begin(), due_.end(), after);
        const Completion c = due_.back().completion;
        if (const HelperThread::Ticket ticket = due_.back().ticket) copies_.wait(ticket);
        due_.pop_back();
        --in_flight_;
        if (callback_) callback_(c);
        events_->completion.notify();
    }
    if (!due_.empty()) events_->due.notify(time_.until(due_.front().done, now));
}

}  // namespace kpu::model
