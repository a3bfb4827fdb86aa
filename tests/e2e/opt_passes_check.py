#!/usr/bin/env python3
"""The optimization passes end to end (docs/compiler.md, "Passes"): each small graph compiled at
-O0, at -O2 and with the pass alone, run on kpu-sim with --check. fuse-epilogue's outputs are
the same bytes as -O0's, and its DRAM bytes (the .kpu's hints and kpu-sim's measured traffic)
are -O0's less exactly the absorbed ops' kernels, with the fused matmul's own by the closed
form 4 (M K Pn + K N Pm + [bias] N Pm) + 4 M N. Disabling the pass gives -O0's program.
Usage: opt_passes_check.py BUILD_BIN_DIR SOURCE_DIR WORK_DIR"""
import os
import sys

import numpy as np

from kpu_run import op, tensor
import pass_run
from pass_run import conv2d, kernel_traffic, run_case, vals

bin_dir, source_dir, work = sys.argv[1:4]
rng = np.random.default_rng(33)
ALL = ["fold-constants", "fold-batchnorm", "fuse-epilogue", "fuse-ffn", "fuse-attention", "plan-memory", "fuse-rows"]
failures = cases = 0


def fail(msg):
    global failures
    failures += 1
    print("FAIL: " + msg)


def compile_run(name, graph, inputs, config, args):
    """(.kpu JSON, kpu-sim stats, {output: raw .npy bytes}) of `graph` compiled with `args`."""
    return run_case(bin_dir, source_dir, os.path.join(work, name), graph, config, inputs, args)


def check_dram(where, program, stats, stats0, want, note):
    """pass_run.check_dram, failing this script."""
    pass_run.check_dram(where, program, stats, stats0, want, note, fail)


def matmul_closed_form(program, op_name):
    """4 (M K Pn + K N Pm + [bias] N Pm) + 4 M N for fused matmul `op_name` of the .kpu."""
    g = program["graph"]
    o = next(x for x in g["ops"] if x["name"] == op_name)
    shapes = {t["name"]: t["shape"] for t in g["tensors"]}
    (m, k), n = shapes[o["A"]], shapes[o["B"]][1]
    index = next(i for i, x in enumerate(program["kernels"]) if x["op"] == op_name)
    tasks = [t for t in program["tasks"] if t["kernel"] == index]
    pm, pn = len({tuple(t["rows"]) for t in tasks}), len({tuple(t["cols"]) for t in tasks})
    return 4 * (m * k * pn + k * n * pm + (n * pm if o.get("bias") else 0)) + 4 * m * n


def fusion_case(name, graph, inputs, config, fused, conv=False):
    """`fused`: {fused op name: [absorbed op names]} expected at -O2. A conv's kernel moves the
    same bytes with its activation as without (`conv`); a matmul's by the closed form."""
    global cases
    cases += 1
    p0, s0, o0 = compile_run(name + "_O0_" + config, graph, inputs, config, ["-O0"])
    alone = ["-O2"] + [a for p in ALL if p != "fuse-epilogue" for a in ("--disable-pass", p)]
    # plan-memory off too: it adds the reuse dependencies to the tasks whatever else runs.
    off = ["-O2", "--disable-pass", "fuse-epilogue", "--disable-pass", "plan-memory"]
    runs = {"-O2": compile_run(name + "_O2_" + config, graph, inputs, config, ["-O2"]),
            "alone": compile_run(name + "_alone_" + config, graph, inputs, config, alone)}
    p_off, s_off, o_off = compile_run(name + "_off_" + config, graph, inputs, config, off)
    if p_off["graph"] != p0["graph"] or p_off["tasks"] != p0["tasks"] or o_off != o0:
        fail(f"{name} on {config}: --disable-pass fuse-epilogue (and plan-memory) is not -O0's program")
    for label, (p, s, o) in runs.items():
        where = f"{name} on {config} ({label})"
        if o != o0:
            fail(f"{where}: outputs are not the same bytes as -O0")
        if "fuse-epilogue" not in p.get("passes", []):
            fail(f"{where}: passes {p.get('passes')} do not record fuse-epilogue")
        got = {x["name"]: x.get("fused_with", []) for x in p["graph"]["ops"] if x.get("fused_with")}
        if got != fused:
            fail(f"{where}: fused_with {got}, expected {fused}")
        t0, t2 = kernel_traffic(p0), kernel_traffic(p)
        want = sum(t0.values())
        for f_op, absorbed in fused.items():
            want -= t0[f_op] + sum(t0.get(a, 0) for a in absorbed)
            want += t0[f_op] if conv else matmul_closed_form(p, f_op)
        check_dram(where, p, s, s0, want, "same bytes as -O0")


def mlp_graph(m, k, n, chain, gemm=False, bias_first=False):
    """x[m,k] @ W[k,n] (a MatMul, or a Gemm with bias b) followed by `chain`: ("add",) adds
    a row vector c[n], ("Relu",), ("Gelu", approximate), ... an activation."""
    tensors = [tensor("x", [m, k], "input"), tensor("W", [k, n], "constant")]
    inputs = {"x": rng.standard_normal((m, k)), "W": rng.standard_normal((k, n)) / np.sqrt(k)}
    if gemm:
        tensors.append(tensor("b", [n], "constant"))
        inputs["b"] = rng.standard_normal(n)
        ops = [op("Gemm", "mm", ["x", "W", "b"], ["t0"])]
    else:
        ops = [op("MatMul", "mm", ["x", "W"], ["t0"])]
    last = "t0"
    for i, step in enumerate(chain):
        out = "y" if i == len(chain) - 1 else f"t{i + 1}"
        if step[0] == "add":
            tensors.append(tensor("c", [n], "constant"))
            inputs["c"] = rng.standard_normal(n)
            ops.append(op("Add", "bias_add", ["c", last] if bias_first else [last, "c"], [out]))
        elif step[0] == "Gelu":
            ops.append(op("Gelu", "act", [last], [out], approximate=step[1]))
        else:
            ops.append(op(step[0], "act", [last], [out]))
        last = out
    tensors += [tensor(f"t{j}") for j in range(len(chain))] + [tensor("y", None, "output")]
    return {"tensors": tensors, "ops": ops}, inputs


for config in ("edge", "t64"):
    g, i = mlp_graph(96, 200, 80, [("add",), ("Relu",)])
    fusion_case("matmul_add_relu", g, i, config, {"mm": ["bias_add", "act"]})
    g, i = mlp_graph(64, 128, 300, [("add",)], bias_first=True)
    fusion_case("matmul_bias_first", g, i, config, {"mm": ["bias_add"]})
    g, i = mlp_graph(70, 96, 130, [("Gelu", "tanh")], gemm=True)
    fusion_case("gemm_gelu_tanh", g, i, config, {"mm": ["act"]})
    for kind in (("Gelu", "none"), ("Sigmoid",), ("Silu",), ("Tanh",)):
        g, i = mlp_graph(33, 64, 48, [("add",), kind])
        fusion_case("matmul_add_" + "_".join(kind).lower(), g, i, config, {"mm": ["bias_add", "act"]})

# A Conv then an activation: the layout pass puts the activation after the conv in NHWC (a
# vector op at -O0), where fuse-epilogue takes it into the conv's drain.
for config in ("edge", "t64"):
    for kind in (("Relu",), ("Gelu", "tanh"), ("Sigmoid",)):
        x, w, b = rng.standard_normal((2, 5, 9, 11)), rng.standard_normal((6, 5, 3, 3)) / 4, rng.standard_normal(6)
        act = op(kind[0], "act", ["t"], ["y"], **({"approximate": kind[1]} if len(kind) > 1 else {}))
        g = {"tensors": [tensor("x", [2, 5, 9, 11], "input"), tensor("W", [6, 5, 3, 3], "constant"),
                         tensor("b", [6], "constant"), tensor("t"), tensor("y", None, "output")],
             "ops": [op("Conv", "conv", ["x", "W", "b"], ["t"], pads=[1, 0, 1, 2], strides=[1, 2]), act]}
        fusion_case("conv_" + "_".join(kind).lower(), g, {"x": x, "W": w, "b": b}, config,
                    {"conv.conv": ["act.relaid"]}, conv=True)

# fold-constants: a transposed constant weight and a bias computed from constants become
# constants (weights beside the .kpu); the MatMul then takes the bias into its drain.
for config in ("edge", "t64"):
    cases += 1
    wv = rng.standard_normal((24, 40)).astype(np.float32)
    g = {"tensors": [tensor("x", [17, 40], "input"), tensor("W", [24, 40], "constant", value=vals(wv)),
                     tensor("a", [2], "constant", value=[0.1, 0.3]), tensor("s", [24], "constant", value=vals(
                         rng.standard_normal(24))), tensor("Wt"), tensor("a2"), tensor("bias"), tensor("h"),
                     tensor("y", None, "output")],
         "ops": [op("Transpose", "wt", ["W"], ["Wt"], perm=[1, 0]),
                 op("Concat", "cat", ["a"] * 12, ["a2"], axis=0), op("Div", "scale", ["a2", "s"], ["bias"]),
                 op("MatMul", "mm", ["x", "Wt"], ["h"]), op("Add", "add", ["h", "bias"], ["y"])]}
    inputs = {"x": rng.standard_normal((17, 40))}
    p0, s0, o0 = compile_run("fold_O0_" + config, g, inputs, config, ["-O0"])
    alone = ["-O2"] + [a for q in ALL if q != "fold-constants" for a in ("--disable-pass", q)]
    for label, args in (("-O2", ["-O2"]), ("alone", alone)):
        p, s, o = compile_run("fold_" + label.strip("-") + "_" + config, g, inputs, config, args)
        kinds = sorted(x["op"] for x in p["graph"]["ops"])
        want_kinds = ["matmul"] if label == "-O2" else ["Add", "MatMul"]
        if o != o0 or kinds != want_kinds or p.get("passes", [])[:1] != ["fold-constants"]:
            fail(f"fold-constants on {config} ({label}): ops {kinds}, passes {p.get('passes')}, "
                 f"same bytes {o == o0}")
        weights = sorted(os.listdir(os.path.join(work, "fold_" + label.strip("-") + "_" + config, "p.weights")))
        if weights != ["Wt.npy", "bias.npy"]:
            fail(f"fold-constants on {config} ({label}): weights {weights}")
        # DRAM: -O0's less the folded ops' kernels (and, at -O2, the fused Add's and MatMul's,
        # the fused matmul's own by the closed form).
        t0 = kernel_traffic(p0)
        want = sum(t0.values()) - t0["wt"] - t0["cat"] - t0["scale"]
        if label == "-O2":
            want += matmul_closed_form(p, "mm") - t0["mm"] - t0["add"]
        measured = s["dram_reads_bytes"] + s["dram_writes_bytes"]
        if measured != want:
            fail(f"fold-constants on {config} ({label}): DRAM {measured}, closed form {want}")
        print(f"fold-constants on {config} ({label}): same bytes as -O0; DRAM "
              f"{s0['dram_reads_bytes'] + s0['dram_writes_bytes']} -> {measured} B")

# A matmul whose result is read twice, and an Add of a full matrix to a matmul's result that
# is a graph output, stay as they are (an Add of a full matrix to an intermediate is a
# residual the drain takes: epilogue_check.py).
for name, extra in (("read_twice", True), ("matrix_add", False)):
    cases += 1
    tensors = [tensor("x", [32, 48], "input"), tensor("W", [48, 40], "constant"), tensor("t"),
               tensor("y", None, "output")]
    inputs = {"x": rng.standard_normal((32, 48)), "W": rng.standard_normal((48, 40))}
    if extra:
        tensors.append(tensor("z", None, "output"))
        ops = [op("MatMul", "mm", ["x", "W"], ["t"]), op("Relu", "act", ["t"], ["y"]), op("Sigmoid", "s", ["t"], ["z"])]
    else:
        tensors[2] = tensor("t", None, "output")
        tensors.append(tensor("r", [32, 40], "input"))
        inputs["r"] = rng.standard_normal((32, 40))
        ops = [op("MatMul", "mm", ["x", "W"], ["t"]), op("Add", "res", ["t", "r"], ["y"])]
    g = {"tensors": tensors, "ops": ops}
    p0, _, o0 = compile_run(name + "_O0", g, inputs, "edge", ["-O0"])
    p2, _, o2 = compile_run(name + "_O2", g, inputs, "edge", ["-O2"])
    if p2["graph"] != p0["graph"] or o2 != o0:
        fail(f"{name}: -O2 changed a graph with nothing to fuse")



def bn_graph(known, conv_bias, relu):
    """Conv (3 -> 8 channels, 3x3, pad 1) -> BatchNormalization (-> Relu); parameters inline
    when `known`, else graph inputs."""
    c, co = 3, 8
    p = {"W": rng.standard_normal((co, c, 3, 3)) / 3, "cb": rng.standard_normal(co), "scale": rng.uniform(0.5, 2, co),
         "B": rng.standard_normal(co), "mean": rng.standard_normal(co) * 0.3, "var": rng.uniform(0.2, 3, co)}
    p = {k: v.astype(np.float32).astype(np.float64) for k, v in p.items()}
    inputs = {"x": rng.standard_normal((1, c, 12, 10))}
    tensors = [tensor("x", [1, c, 12, 10], "input")]
    for k, v in p.items():
        if k == "cb" and not conv_bias:
            continue
        if known:
            tensors.append(tensor(k, list(v.shape), "constant", value=vals(v)))
        else:
            tensors.append(tensor(k, list(v.shape), "input"))
            inputs[k] = v
    ops = [op("Conv", "conv", ["x", "W"] + (["cb"] if conv_bias else []), ["t"], pads=[1, 1, 1, 1]),
           op("BatchNormalization", "bn", ["t", "scale", "B", "mean", "var"], ["u" if relu else "y"], epsilon=1e-3)]
    tensors += [tensor("t"), tensor("y", None, "output")]
    if relu:
        tensors.append(tensor("u"))
        ops.append(op("Relu", "act", ["u"], ["y"]))

    def want(t):
        y = conv2d(t["x"], p["W"], p["cb"] if conv_bias else None, 1)
        s = p["scale"] / np.sqrt(p["var"] + float(np.float32(1e-3)))
        y = (y - p["mean"][None, :, None, None]) * s[None, :, None, None] + p["B"][None, :, None, None]
        return np.maximum(y, 0) if relu else y
    return {"tensors": tensors, "ops": ops}, inputs, want


def bn_case(name, known, conv_bias, relu, config):
    global cases
    cases += 1
    g, inputs, want = bn_graph(known, conv_bias, relu)
    p0, s0, o0 = compile_run(name + "_O0_" + config, g, inputs, config, ["-O0"])
    alone = ["-O2"] + [a for q in ALL if q != "fold-batchnorm" for a in ("--disable-pass", q)]
    for label, args in (("-O2", ["-O2"]), ("alone", alone)):
        where = f"{name} on {config} ({label})"
        p, s, _ = compile_run(name + "_" + label.strip("-") + "_" + config, g, inputs, config, args)
        got = np.load(os.path.join(work, name + "_" + label.strip("-") + "_" + config, "out", "y.npy"))
        err = np.abs(got - want(inputs)).max() / max(np.abs(want(inputs)).max(), 1)
        fused = {x["name"]: x.get("fused_with") for x in p["graph"]["ops"] if x.get("fused_with")}
        if not known:
            # The same ops and tensors (plan-memory may order the ops for a smaller peak).
            by_name = lambda graph: sorted(graph["ops"], key=lambda o: o["name"])  # noqa: E731
            if p["graph"]["tensors"] != p0["graph"]["tensors"] or by_name(p["graph"]) != by_name(p0["graph"]):
                fail(f"{where}: parameters not known, but the graph changed")
            continue
        if "fold-batchnorm" not in p.get("passes", []) or fused.get("conv.conv", [None])[0] != "bn":
            fail(f"{where}: passes {p.get('passes')}, fused_with {fused}")
        if err > 1e-5:
            fail(f"{where}: max error / max(|ref|, 1) = {err:.3g} against NumPy")
        # DRAM: -O0's less the BN's kernels; the conv reads its new bias once per task row
        # (4 Cout Pm) when it had none.
        t0, t2 = kernel_traffic(p0), kernel_traffic(p)
        index = next(i for i, k in enumerate(p["kernels"]) if k["op"] == "conv.conv")
        pm = len({tuple(t["rows"]) for t in p["tasks"] if t["kernel"] == index})
        bn_bytes = sum(v for k, v in t0.items() if k == "bn" or k.startswith("bn."))
        # The layout pass moved the Relu next to the conv (act.relaid) where fuse-epilogue takes it.
        absorbed = fused.get("conv.conv", [])[1:]
        relu_bytes = t0["act"] if absorbed else 0  # at -O0 after the BN, in NCHW: "act"
        if relu and label == "-O2" and absorbed != ["act.relaid"]:
            fail(f"{where}: the Relu was not fused into the conv: {absorbed}")
        want_bytes = sum(t0.values()) - bn_bytes - relu_bytes + (0 if conv_bias else 4 * 8 * pm)
        check_dram(where, p, s, s0, want_bytes, f"error {err:.3g}")


for config in ("edge", "t64"):
    bn_case("conv_bn", True, False, False, config)
    bn_case("conv_bias_bn_relu", True, True, True, config)
bn_case("conv_bn_unknown", False, True, False, "edge")

print(f"{cases - failures} of {cases} cases passed" if not failures else f"{failures} failures in {cases} cases")
raise SystemExit(1 if failures else 0)
