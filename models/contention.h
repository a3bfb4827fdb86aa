// How a mover learns that its burst queued behind another initiator's: an ignorable TLM
// extension the mover attaches to its payload and every timed stage (memory port, network
// link) sets. Movers run ahead of the kernel by a quantum; while they contend for a port
// they sync every train's worth of bytes instead (a burst, with per-burst timing), so
// contending movers interleave at that grain and share the port fairly rather than in
// quantum-sized turns. Ignorable: other initiators need not know it.
#pragma once

#include <tlm>

namespace kpu::model {

struct ContentionExtension : tlm::tlm_extension<ContentionExtension> {
    bool contended = false;

    tlm::tlm_extension_base* clone() const override { return new ContentionExtension(*this); }
    void copy_from(const tlm::tlm_extension_base& other) override {
        contended = static_cast<const ContentionExtension&>(other).contended;
    }

    /// Marks the payload's extension, if it carries one.
    static void mark(tlm::tlm_generic_payload& trans, bool contended) {
        if (!contended) return;
        if (auto* e = trans.get_extension<ContentionExtension>()) e->contended = true;
    }
};

}  // namespace kpu::model
