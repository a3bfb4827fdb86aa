#include "models/mover.h"

#include <sysc/kernel/sc_dynamic_processes.h>

#include <algorithm>
#include <cstring>
#include <iterator>
#include <sstream>

#include "models/paged_storage.h"

namespace kpu::model {

using sc_core::sc_time;

const char* to_string(TransferStatus status) {
    switch (status) {
        case TransferStatus::Ok: return "ok";
        case TransferStatus::BadDescriptor: return "bad descriptor";
        case TransferStatus::AccessError: return "access error";
    }
    return "?";
}

Mover::Mover(sc_core::sc_module_name name, const char* kind, const hw::Engine& engine, const hw::Config& config,
             const hw::AddressMap& map, const sc_time& quantum)
    : sc_core::sc_module(name),
      socket("socket"),
      kind_(kind),
      config_(config),
      map_(map),
      bandwidth_(engine.bandwidth_bytes_per_s),
      fs_per_byte_(double(kFsPerSecond) / engine.bandwidth_bytes_per_s),
      queue_depth_(std::max<uint32_t>(engine.queue_depth, 1)),
      quantum_(time_.to_fs(quantum)),
      contention_(nullptr) {
    socket.register_nb_transport_bw(this, &Mover::nb_transport_bw);
    socket.register_invalidate_direct_mem_ptr(this, &Mover::invalidate_direct_mem_ptr);
    // Index granules no larger than the smallest DMI region: a DRAM interleave block, an L1
    // buffer, an L2 bank or a memory page.
    const uint64_t smallest = std::min({config.dram.interleave_bytes, config.l1.capacity_bytes,
                                        config.l2.capacity_bytes, uint64_t(PagedStorage::kMaxPageBytes)});
    while ((uint64_t(2) << granule_shift_) <= smallest) ++granule_shift_;
    contention_ = new ContentionExtension;
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
        while (queue_.empty()) sc_core::wait(events_->submit), contended_bytes_ = 0, alone_trains_ = 0;
        const hw::Transfer transfer = queue_.front();
        queue_.pop_front();
        execute(transfer);
    }
}

const char* Mover::validate(const hw::Transfer& t) const {
    if (t.rows == 0 || t.row_bytes == 0) return "empty transfer (rows or row_bytes is 0)";
    if (t.rows > 1 && t.src_stride < t.row_bytes) return "src_stride is smaller than row_bytes";
    const uint64_t src_span = uint64_t(t.rows - 1) * t.src_stride + t.row_bytes;
    if (t.src + src_span < t.src) return "source range wraps around the address space";
    if (t.transform == hw::Transform::Identity) {
        if (t.rows > 1 && t.dst_stride < t.row_bytes) return "destination rows overlap (dst_stride < row_bytes)";
        if (t.dst + uint64_t(t.rows - 1) * t.dst_stride + t.row_bytes < t.dst)
            return "destination range wraps around the address space";
        return nullptr;
    }
    if (t.elem_bytes == 0 || (t.elem_bytes & (t.elem_bytes - 1)) != 0 || t.elem_bytes > 64)
        return "transpose needs elem_bytes a power of two <= 64";
    if (t.row_bytes % t.elem_bytes != 0) return "transpose needs row_bytes a multiple of elem_bytes";
    const uint64_t cols = t.row_bytes / t.elem_bytes, dst_row = uint64_t(t.rows) * t.elem_bytes;
    if (cols > 1 && t.dst_stride < dst_row) return "destination rows overlap (dst_stride < rows * elem_bytes)";
    if (t.dst + (cols - 1) * t.dst_stride + dst_row < t.dst) return "destination range wraps around the address space";
    return nullptr;
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
    now_ = time_.now();
    job.start = job.done = std::max(engine_free_, now_);
    if (const char* problem = validate(t)) {
        std::ostringstream msg;
        msg << name() << ": transfer " << t.id << " rejected: " << problem << " (src 0x" << std::hex << t.src
            << ", dst 0x" << t.dst << std::dec << ", " << t.rows << " rows of " << t.row_bytes << " bytes, strides "
            << t.src_stride << "/" << t.dst_stride << ")";
        SC_REPORT_WARNING("kpu/mover", msg.str().c_str());
        finish(job, TransferStatus::BadDescriptor);
        return;
    }
    // Bursts are cut at the smaller of the two levels' burst sizes; every instance and DRAM
    // interleave boundary is a multiple of it, so no burst ever straddles one.
    const uint32_t burst = std::min(burst_of(t.src), burst_of(t.dst));
    burst_ = burst;
    if (helper_) job.stretches.reserve(std::min<uint32_t>(t.rows, 1024));  // about one per row
    const bool ok = t.transform == hw::Transform::Identity ? copy_identity(t, burst, job) : copy_transpose(t, burst, job);
    finish(job, ok ? TransferStatus::Ok : TransferStatus::AccessError);
}

Fs Mover::issue(Job& job, uint32_t bytes) {
    const Fs at = std::max(engine_free_, now_);
    engine_free_ = at + engine_occupancy(bytes);
    if (!job.started) job.start = at, job.started = true;
    return at;
}

void Mover::hand_over(Job& job) {
    if (job.stretches.empty()) return;
    uint64_t bytes = 0;
    for (const Stretch& s : job.stretches) bytes += s.bytes;
    handed_ = helper_->submit([stretches = std::move(job.stretches)] {
        for (const Stretch& s : stretches) std::memmove(s.dst, s.src, s.bytes);
    }, bytes);
    job.stretches.clear();
}

void Mover::settle(Job& job) {
    if (!helper_) return;
    hand_over(job);
    if (handed_) helper_->wait(handed_), handed_ = 0;
}

bool Mover::access(Job& job, tlm::tlm_command command, uint64_t addr, uint8_t* data, uint32_t bytes, Fs at,
                   Fs& done) {
    settle(job);
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
    if (command == tlm::TLM_READ_COMMAND) contention_->contended = false;  // per burst: read + write
    sc_time delay = time_.until(at, now);
    socket->b_transport(trans_, delay);
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

Mover::Region* Mover::region(uint64_t addr, uint32_t bytes) {
    if (!region_index_.empty())
        if (const uint32_t i = region_index_[region_slot(addr)]; i != kNoRegion) {
            Region& r = regions_[i];
            if (addr - r.lo < r.hi - r.lo && bytes <= r.hi - addr) return &r;
        }
    hw::Location where;
    if (!map_.decode(addr, bytes, where)) return nullptr;  // b_transport reports it
    tlm::tlm_generic_payload request;
    request.set_command(tlm::TLM_READ_COMMAND);
    request.set_address(addr);
    request.set_data_length(bytes);
    TimingPath path;
    request.set_extension(&path);
    tlm::tlm_dmi dmi;
    const bool granted = socket->get_direct_mem_ptr(request, dmi);
    request.clear_extension(&path);
    if (!granted || !path.complete || !dmi.is_read_write_allowed() || dmi.get_start_address() > addr ||
        dmi.get_end_address() < addr + bytes - 1)
        return nullptr;
    // Grants never overlap (one memory page, or one DRAM interleave block of it).
    constexpr size_t kMaxRegions = 8192;  // about 0.6 MB; then start over
    if (regions_.size() >= kMaxRegions) forget_regions();
    ++stats_.dmi_grants;
    Region& r = regions_.emplace_back();
    r.lo = dmi.get_start_address();
    r.hi = dmi.get_end_address() + 1;
    r.data = dmi.get_dmi_ptr();
    r.path = path;
    index_region(uint32_t(regions_.size() - 1));
    return &r;
}

void Mover::index_region(uint32_t i) {
    const uint64_t granule = uint64_t(1) << granule_shift_;
    auto granules = [&](const Region& r) { return ((r.hi - 1) >> granule_shift_) - (r.lo >> granule_shift_) + 1; };
    auto enter = [&](uint32_t j) {
        const Region& r = regions_[j];
        for (uint64_t g = r.lo & ~(granule - 1), n = 0; g < r.hi && n < region_index_.size(); g += granule, ++n)
            region_index_[region_slot(g)] = j;
    };
    indexed_ += granules(regions_[i]);
    if (region_index_.empty() || (2 * indexed_ > region_index_.size() && region_index_.size() < kMaxIndexSlots)) {
        size_t slots = std::max(kMinIndexSlots, region_index_.size());
        while (slots < 2 * indexed_ && slots < kMaxIndexSlots) slots *= 2;
        region_index_.assign(slots, kNoRegion);
        run_shift_ = 64;
        for (size_t n = slots / kRunGranules; n > 1; n >>= 1) --run_shift_;
        for (uint32_t j = 0; j <= i; ++j) enter(j);  // in grant order: the newest wins a slot
        return;
    }
    enter(i);
}

Fs Mover::book(const TimingPath& path, Fs at, uint32_t bytes, bool write) {
    // Exactly what the routers and the memory do on b_transport: each stage books the burst
    // and hands on at a whole kernel tick. now_ is the kernel's time (this thread runs), and
    // nobody books before the kernel's time: the floor that lets a port forget its past.
    Fs t = time_.ceil(at);
    for (uint32_t i = 0; i < path.count; ++i) {
        const PortTimer::Booking b = path.stages[i]->book(t, bytes, &trans_, write, now_);
        contention_->contended |= b.contended;
        t = time_.ceil(b.done);
    }
    return t;
}

bool Mover::timed(Job& job, tlm::tlm_command command, uint64_t addr, uint8_t* data, uint32_t bytes, Fs at,
                  Fs& done) {
    const Region* r = dmi_enabled_ ? region(addr, bytes) : nullptr;
    if (!r) return access(job, command, addr, data, bytes, at, done);
    if (command == tlm::TLM_READ_COMMAND) contention_->contended = false;
    done = book(r->path, at, bytes, command == tlm::TLM_WRITE_COMMAND);
    settle(job);
    uint8_t* mem = r->data + (addr - r->lo);
    if (command == tlm::TLM_READ_COMMAND)
        std::memcpy(data, mem, bytes);
    else
        std::memcpy(mem, data, bytes);
    ++stats_.dmi_accesses;
    return true;
}

void Mover::sync() {
    sc_core::wait(time_.until(engine_free_, now_));  // zero while contended: a delta, the other runs
    now_ = time_.now();
    contended_bytes_ = 0;
    ++stats_.syncs;
}

void Mover::Train::add(Mover& m, uint64_t count, uint32_t n) {
    // The engine issues every burst in turn (issue(), in closed form): the first at the
    // later of its next free time and now, each further one its occupancy later.
    const Fs occupied = m.engine_occupancy(n);
    const Fs at = std::max(m.engine_free_, m.now_);
    if (bursts == 0) first_at = at, first_bytes = n;
    last_at = at + Fs(count - 1) * occupied;
    last_bytes = n;
    m.engine_free_ = last_at + occupied;
    bursts += uint32_t(count);
    bytes += count * n;
}

void Mover::run_train(Job& job, Train& train) {
    if (train.bursts == 0) return;
    if (!job.started) job.start = train.first_at, job.started = true;
    contention_->contended = false;
    Fs first = time_.ceil(train.first_at), last = time_.ceil(train.last_at);
    // Each stage books the train and hands it on at whole kernel ticks, as b_transport does
    // burst by burst: source stages (read), then destination stages (write).
    for (const TimingPath* path : {&train.from.path, &train.to.path}) {
        const bool write = path == &train.to.path;
        for (uint32_t i = 0; i < path->count; ++i) {
            const PortTimer::TrainBooking b = path->stages[i]->book_train(
                first, last, train.bursts, train.bytes, train.first_bytes, train.last_bytes, &trans_, write, now_);
            contention_->contended |= b.contended;
            first = time_.ceil(b.first_done), last = time_.ceil(b.last_done);
        }
    }
    alone_trains_ = contention_->contended ? 0 : std::min(alone_trains_ + 1, kAloneTrains);
    stats_.dmi_accesses += 2 * uint64_t(train.bursts);
    ++stats_.trains;
    job.bytes += train.bytes;
    const uint64_t booked = train.bytes;
    train.bursts = 0, train.bytes = 0;
    pace(job, last, booked);
}

bool Mover::copy_identity(const hw::Transfer& t, uint32_t burst, Job& job) {
    if (staging_.size() < burst) staging_.resize(burst);
    uint8_t* buffer = staging_.data();
    const uint64_t mask = burst - 1;
    auto piece = [&](uint64_t src, uint64_t dst, uint64_t left) {
        return uint32_t(std::min({left, burst - (src & mask), burst - (dst & mask)}));
    };
    auto holds = [](const Region& r, uint64_t addr, uint32_t bytes) {
        return r.data && addr - r.lo < r.hi - r.lo && bytes <= r.hi - addr;
    };
    // Bursts whose source and destination stay in the same two DMI regions (rows of a
    // strided transfer included) gather into a train of up to train_bytes_, booked at once.
    // A contiguous transfer (both strides are the row) is walked as one row. Its bursts are
    // the same when the rows are whole bursts and one side starts on a burst boundary: then
    // every row end is a burst boundary on that side, where a burst is cut anyway.
    uint64_t rows = t.rows, row_bytes = t.row_bytes;
    if (t.src_stride == row_bytes && t.dst_stride == row_bytes && row_bytes % burst == 0 &&
        ((t.src & mask) == 0 || (t.dst & mask) == 0))
        row_bytes *= rows, rows = 1;
    Train train;
    Region& from = train.from;
    Region& to = train.to;
    for (uint64_t r = 0; r < rows; ++r) {
        uint64_t src = t.src + r * t.src_stride, dst = t.dst + r * t.dst_stride, left = row_bytes;
        while (left) {
            const uint32_t n = piece(src, dst, left);
            bool direct = false;
            if (dmi_enabled_) {
                const bool same_from = holds(from, src, n), same_to = holds(to, dst, n);
                if (!same_from || !same_to) {
                    run_train(job, train);  // other regions, other stages
                    // Copies: regions_ may reallocate. A strided transfer's rows mostly change
                    // one side only (the DRAM interleave block, not the L3 page).
                    if (!same_from) {
                        const Region* r1 = region(src, n);
                        from = r1 ? *r1 : Region{};
                    }
                    if (!same_to && from.data) {
                        const Region* r2 = region(dst, n);
                        to = r2 ? *r2 : Region{};
                    }
                }
                direct = from.data && to.data;
            }
            if (direct) {
                // The bytes of the whole stretch move with one memmove; its bursts are issued
                // and timed as trains.
                const uint64_t stretch = std::min({left, from.hi - src, to.hi - dst});
                uint8_t* into = to.data + (dst - to.lo);
                const uint8_t* out_of = from.data + (src - from.lo);
                if (helper_)
                    job.stretches.push_back({into, out_of, stretch});
                else
                    std::memmove(into, out_of, stretch);
                for (uint64_t done = 0; done < stretch;) {
                    const uint32_t m = piece(src + done, dst + done, stretch - done);
                    // Whole bursts when both ends are aligned (the common case): in one step.
                    uint64_t count = 1;
                    if (train.bursts == 0) train.cap = next_train_cap();
                    if (m == burst) count = std::min<uint64_t>((stretch - done) / burst, (train.cap - train.bytes) / burst);
                    train.add(*this, std::max<uint64_t>(count, 1), m);
                    done += std::max<uint64_t>(count, 1) * m;
                    if (train.bytes + burst > train.cap) run_train(job, train);
                }
                src += stretch, dst += stretch, left -= stretch;
                continue;
            }
            run_train(job, train);
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
    run_train(job, train);
    return true;
}

bool Mover::copy_transpose(const hw::Transfer& t, uint32_t burst, Job& job) {
    // A band of burst / elem_bytes source rows is read, then written out as one
    // destination burst per source column: the band's writes wait for its last read, and
    // bands pipeline like bursts do.
    const uint32_t elem = t.elem_bytes, cols = t.row_bytes / elem;
    const uint32_t band = std::max<uint32_t>(1, burst / elem);
    if (staging_.size() < uint64_t(band) * t.row_bytes) staging_.resize(uint64_t(band) * t.row_bytes);
    if (column_.size() < uint64_t(band) * elem) column_.resize(uint64_t(band) * elem);
    const uint64_t mask = burst - 1;
    for (uint32_t r0 = 0; r0 < t.rows; r0 += band) {
        const uint32_t h = std::min(band, t.rows - r0);
        Fs ready = 0;
        for (uint32_t i = 0; i < h; ++i) {
            uint64_t src = t.src + uint64_t(r0 + i) * t.src_stride, left = t.row_bytes;
            uint8_t* row = staging_.data() + uint64_t(i) * t.row_bytes;
            while (left) {
                const uint32_t n = uint32_t(std::min(left, burst - (src & mask)));
                Fs read_done = 0;
                if (!timed(job, tlm::TLM_READ_COMMAND, src, row, n, issue(job, n), read_done)) return false;
                ready = std::max(ready, read_done);
                src += n, row += n, left -= n;
            }
        }
        for (uint32_t c = 0; c < cols; ++c) {
            for (uint32_t i = 0; i < h; ++i)
                std::memcpy(column_.data() + uint64_t(i) * elem, staging_.data() + uint64_t(i) * t.row_bytes + uint64_t(c) * elem,
                            elem);
            uint64_t dst = t.dst + uint64_t(c) * t.dst_stride + uint64_t(r0) * elem, left = uint64_t(h) * elem;
            uint8_t* data = column_.data();
            while (left) {
                const uint32_t n = uint32_t(std::min(left, burst - (dst & mask)));
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
    HelperThread::Ticket ticket = 0;
    if (!job.stretches.empty()) hand_over(job), ticket = handed_;
    due_.push_back({job.done, seq_++, c, ticket});
    std::push_heap(due_.begin(), due_.end(), after);
    events_->due.notify(time_.until(due_.front().done, now));
}

void Mover::deliver() {
    const Fs now = time_.now();
    while (!due_.empty() && due_.front().done <= now) {
        std::pop_heap(due_.begin(), due_.end(), after);
        const Completion c = due_.back().completion;
        if (const HelperThread::Ticket ticket = due_.back().ticket) helper_->wait(ticket);
        due_.pop_back();
        --in_flight_;
        if (callback_) callback_(c);
        events_->completion.notify();
    }
    if (!due_.empty()) events_->due.notify(time_.until(due_.front().done, now));
}

}  // namespace kpu::model
