// Depth-first search over nodes 0..n-1 with an explicit stack, for the checks whose depth the
// input chooses (a graph that is one chain of 120 000 ops, a .kpu whose tasks form one
// dependency chain): the call stack stays flat whatever the depth.
#pragma once

#include <cstdint>
#include <utility>
#include <vector>

namespace kpu::compiler {

/// Visits every node from 0 up, each node's successors in order before the node is done
/// (successors(node) is a vector of node indices, or of -1 for none). Returns the nodes in
/// the order they were done (every successor before its predecessors). On a cycle calls
/// on_cycle(cycle), which must throw: the nodes from the first on the cycle to the one that
/// closes it, that one again at the end (a -> b -> a).
template <class Successors, class OnCycle>
std::vector<uint32_t> depth_first_order(uint32_t nodes, Successors successors, OnCycle on_cycle) {
    std::vector<uint8_t> state(nodes, 0);  // 0 new, 1 on the path, 2 done
    std::vector<uint32_t> done;
    std::vector<std::pair<uint32_t, size_t>> path;  // a node and the position of its next successor
    auto enter = [&](uint32_t node) {
        if (state[node] == 1) {
            std::vector<uint32_t> cycle;
            for (const auto& [on_path, next] : path)
                if (on_path == node || !cycle.empty()) cycle.push_back(on_path);
            cycle.push_back(node);
            on_cycle(cycle);
        }
        state[node] = 1;
        path.emplace_back(node, 0);
    };
    for (uint32_t start = 0; start < nodes; ++start) {
        if (state[start] == 2) continue;
        enter(start);
        while (!path.empty()) {
            auto& [node, next] = path.back();
            const auto& after = successors(node);
            if (next < after.size()) {
                const int64_t s = int64_t(after[next++]);
                if (s >= 0 && state[s] != 2) enter(uint32_t(s));
                continue;
            }
            state[node] = 2;
            done.push_back(node);
            path.pop_back();
        }
    }
    return done;
}

}  // namespace kpu::compiler
