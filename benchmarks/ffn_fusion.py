#!/usr/bin/python3
"""The GPT-2 small FFN, y = gelu(x @ W1 + b1) @ W2 + b2 (768 -> 3072 -> 768), on one config,
-O0 against -O2 and against the fused kernel itself (docs/benchmarks.md, "FFN fusion").

  benchmarks/ffn_fusion.py BIN_DIR CONFIG WORK_DIR [TOKENS ...]      (tokens: 256 1024)

Per token count: the two matmuls compiled -O0 (h through DRAM), -O2 (fuse-ffn decides: it
fuses only when the fused kernel moves fewer DRAM bytes and is not estimated slower; its
reason, from kpu-compile -v, is printed) and the same layer written as one `ffn` op (the
fused kernel whatever the pass would decide), each simulated by kpu-sim with --stats (no
--check). Prints the simulated cycles, the DRAM bytes simulated and the hints, the tiling,
and each variant's DRAM bytes and cycles against -O0's.
"""
import json
import os
import sys

from kpu_tools import compile_and_simulate


def graph(tokens, fused):
    t = [{"name": "x", "shape": [tokens, 768], "role": "input"},
         {"name": "W1", "shape": [768, 3072], "role": "constant"}, {"name": "b1", "shape": [3072], "role": "constant"},
         {"name": "W2", "shape": [3072, 768], "role": "constant"}, {"name": "b2", "shape": [768], "role": "constant"},
         {"name": "y", "role": "output"}]
    if fused:
        return {"tensors": t, "ops": [{"op": "ffn", "name": "ffn", "inputs": ["x", "W1", "W2", "b1", "b2"],
                                       "outputs": ["y"], "attributes": {"activation": "gelu"}}]}
    return {"tensors": t + [{"name": "h"}],
            "ops": [{"op": "matmul", "name": "fc1", "A": "x", "B": "W1", "bias": "b1", "activation": "gelu", "C": "h"},
                    {"op": "matmul", "name": "fc2", "A": "h", "B": "W2", "bias": "b2", "C": "y"}]}


def run(bin_dir, config, work, name, g, compile_args):
    os.makedirs(work, exist_ok=True)
    src = os.path.join(work, name + ".json")
    with open(src, "w") as f:
        json.dump(g, f)
    program, s, text = compile_and_simulate(bin_dir, config, src, os.path.join(work, name), ["-v"] + compile_args)
    notes = [line for line in text.splitlines() if line.startswith("fuse-ffn:")]
    tiles = ["x".join(map(str, k["tile"])) for k in program["kernels"]]
    return {"cycles": s["total_cycles"],
            "dram": s["dram_reads_bytes"] + s["dram_writes_bytes"],
            "hints": program["hints"]["dram_read_bytes"] + program["hints"]["dram_write_bytes"],
            "ops": [o["op"] for o in program["graph"]["ops"]], "tiles": tiles, "tasks": len(program["tasks"]),
            "notes": notes}


def main():
    bin_dir, config, work = sys.argv[1:4]
    tokens = [int(t) for t in sys.argv[4:]] or [256, 1024]
    name = os.path.splitext(os.path.basename(config))[0]
    print(f"GPT-2 small FFN (768 -> 3072 -> 768, gelu) on {name}")
    print(f"{'tokens':>6} {'variant':<10} {'ops':<18} {'tiles':<22} {'tasks':>5} {'cycles':>10} {'DRAM bytes':>12} "
          f"{'hints':>12} {'DRAM vs -O0':>11} {'cycles vs -O0':>13}")
    for n in tokens:
        base = None
        for variant, g, args in (("-O0", graph(n, False), ["-O0"]), ("-O2", graph(n, False), []),
                                 ("ffn op", graph(n, True), [])):
            r = run(bin_dir, config, os.path.join(work, str(n)), variant.strip("-").replace(" ", "_"), g, args)
            base = base or r
            print(f"{n:>6} {variant:<10} {'+'.join(r['ops']):<18} {','.join(r['tiles']):<22} {r['tasks']:>5} "
                  f"{r['cycles']:>10} {r['dram']:>12} {r['hints']:>12} {base['dram'] / r['dram']:>10.2f}x "
                  f"{base['cycles'] / r['cycles']:>12.2f}x")
            for note in r["notes"]:
                print(f"{'':>8}{note}")


if __name__ == "__main__":
    main()
