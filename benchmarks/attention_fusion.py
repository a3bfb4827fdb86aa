#!/usr/bin/python3
"""Flash attention (the fuse-attention pass) against the expansion, side by side in one run
(docs/benchmarks.md, "Attention fusion").

  benchmarks/attention_fusion.py BIN_DIR CONFIG WORK_DIR

Per case: compiles it with kpu-compile -O0 (Attention expanded: the scores and probabilities
through DRAM) and -O2 (one flash_attention kernel where it fits), simulates both with kpu-sim
--stats (random inputs, no --check) and prints the simulated cycles, the DRAM bytes moved
(counted by the DRAM channels), the ratios -O0 / -O2 and the fused kernel's blocks. The cases:
Attention over Q, K, V of [1, 12, S, 64] at S = 512 and 1024, without and with causal masking,
then the BERT-base encoder layer and the GPT-2 small block of examples/.
"""
import json
import os
import sys

from kpu_tools import compile_and_simulate

EXAMPLES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "examples")


def attention_graph(s, causal):
    shape = [1, 12, s, 64]
    return {"tensors": [{"name": n, "shape": shape, "role": "input"} for n in "qkv"] + [{"name": "y", "role": "output"}],
            "ops": [{"op": "Attention", "name": "att", "inputs": ["q", "k", "v"], "outputs": ["y"],
                     "attributes": {"is_causal": int(causal)}}]}


def run(bin_dir, config, graph_path, base, level):
    program, s, _ = compile_and_simulate(bin_dir, config, graph_path, f"{base}.O{level}", [f"-O{level}"])
    fused = {o["name"] for o in program["graph"]["ops"] if o["op"] == "flash_attention"}
    blocks = [k["tile"][:2] for k in program["kernels"] if k["op"] in fused]
    return s["total_cycles"], s["dram_reads_bytes"] + s["dram_writes_bytes"], blocks


def main():
    if len(sys.argv) != 4:
        sys.exit(__doc__)
    bin_dir, config, work = sys.argv[1:4]
    os.makedirs(work, exist_ok=True)
    cases = []
    for s in (512, 1024):
        for causal in (False, True):
            name = f"attention_1x12x{s}x64" + ("_causal" if causal else "")
            path = os.path.join(work, name + ".json")
            with open(path, "w") as f:
                json.dump(attention_graph(s, causal), f)
            cases.append((name, path))
    for name in ("bert_base_layer", "gpt2_block"):
        cases.append((name, os.path.join(EXAMPLES, name + ".json")))
    print(f"{'case':<28} {'cycles -O0':>11} {'cycles -O2':>11} {'speedup':>8} {'DRAM MB -O0':>12} {'DRAM MB -O2':>12} "
          f"{'DRAM ratio':>10}  blocks (Br x Bc)")
    for name, path in cases:
        base = os.path.join(work, name)
        c0, d0, _ = run(bin_dir, config, path, base, 0)
        c2, d2, blocks = run(bin_dir, config, path, base, 2)
        shown = ", ".join(f"{br} x {bc}" for br, bc in blocks) or "-"
        print(f"{name:<28} {c0:>11,} {c2:>11,} {c0 / c2:>7.2f}x {d0 / 1e6:>12.2f} {d2 / 1e6:>12.2f} {d0 / d2:>9.2f}x  {shown}")


if __name__ == "__main__":
    main()
