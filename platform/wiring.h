// Socket binding for the platform's builders, with an optional ProtocolChecker spliced
// into every link (PlatformOptions::check_protocol). Checkers are created in the caller's
// constructor, so they become children of the module being built.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "models/protocol_checker.h"
#include "models/router.h"

namespace kpu::platform {

class Wiring {
public:
    explicit Wiring(bool check) : check_(check) {}

    /// initiator -> router, from compute tile `origin` (AddressDecoder::kChip at chip level).
    template <class Socket>
    void initiator(Socket& socket, model::Router& router, uint32_t origin, const std::string& name) {
        if (!check_) return router.connect_initiator(socket, origin);
        model::ProtocolChecker& c = add(name);
        socket.bind(c.target_socket);
        router.connect_initiator(c.initiator_socket, origin);
    }

    /// router -> memory (or another router's target socket); call in the router's port order.
    template <class Socket>
    void target(model::Router& router, Socket& target, const std::string& name) {
        if (!check_) return router.initiator_socket.bind(target);
        model::ProtocolChecker& c = add(name);
        router.initiator_socket.bind(c.target_socket);
        c.initiator_socket.bind(target);
    }

    const std::vector<std::unique_ptr<model::ProtocolChecker>>& checkers() const { return checkers_; }

private:
    model::ProtocolChecker& add(const std::string& name) {
        checkers_.push_back(std::make_unique<model::ProtocolChecker>((name + "_check").c_str()));
        return *checkers_.back();
    }

    bool check_;
    std::vector<std::unique_ptr<model::ProtocolChecker>> checkers_;
};

}  // namespace kpu::platform
