#!/usr/bin/python3
"""Whole networks from the model zoo on edge (the CI subset of the models suite): ResNet-18 at
64x64 and one BERT-base layer at sequence 32, exported by examples/models/zoo.py to ONNX,
compiled and simulated through scripts/regress --suite models (group ci): their outputs
against PyTorch's (max |kpu - torch| <= 1 % of max(|torch|, 1)), cycles and DRAM bytes
against regress/baselines/models.json. Then the per-layer report of each run
(kpu-sim --report): its layers' cycles add up to the run's total_cycles exactly, every layer
is named after a node of the ONNX model, every Conv, MatMul and Gemm node has its layer (or is
in the fused_with of the layer that absorbed it), its shares add up to 100 %, and scripts/plot
layers draws it.
Usage: models_check.py BUILD_BIN_DIR SOURCE_DIR WORK_DIR"""
import csv
import json
import os
import subprocess
import sys

import onnx

bin_dir, source_dir, work = sys.argv[1:4]
build_dir = os.path.dirname(os.path.abspath(bin_dir))
os.makedirs(work, exist_ok=True)
failures = 0


def check(ok, what):
    global failures
    print(f"{what} -> {'ok' if ok else 'FAIL'}")
    failures += 0 if ok else 1


r = subprocess.run([os.path.join(source_dir, "scripts", "regress"), "--suite", "models", "--case", "ci-*", "-j", "2",
                    "--build-dir", build_dir, "--out", os.path.join(work, "regress")], capture_output=True, text=True)
print(r.stdout[-3000:], r.stderr[-2000:])
check(r.returncode == 0, "scripts/regress --suite models --case 'ci-*': outputs match PyTorch, cycles and DRAM bytes "
                         "match the baselines")

for case in (f"ci-{m}-edge-{opt}" for m in ("resnet18-64", "bert-l1-s32") for opt in ("O0", "O2")):
    case_dir = os.path.join(work, "regress", "cases", case)
    try:
        with open(os.path.join(case_dir, "result.json")) as f:
            result = json.load(f)
        with open(os.path.join(case_dir, "layers.csv"), newline="") as f:
            rows = list(csv.DictReader(f))
    except OSError as e:
        check(False, f"{case}: {e}")
        continue
    stats = result["stats"]
    check(any("-> ok" in line for line in result.get("torch_compare", [])) and
          all("FAIL" not in line for line in result.get("torch_compare", [])),
          f"{case}: compared with PyTorch: {'; '.join(result.get('torch_compare', []))}")
    cycles = sum(int(row["cycles"]) for row in rows)
    check(cycles == stats["total_cycles"], f"{case}: layers' cycles {cycles} == total_cycles {stats['total_cycles']}")
    share = sum(float(row["share_pct"]) for row in rows)
    check(abs(share - 100) < 0.01, f"{case}: shares add up to {share:.4f} %")
    model = onnx.load(os.path.join(result["compile"]["cmd"][1]))
    nodes = {n.name for n in model.graph.node}
    names = [row["layer"] for row in rows]
    strangers = [n for n in names if n not in nodes]
    check(not strangers and len(set(names)) == len(names),
          f"{case}: {len(names)} layers, all distinct ONNX node names{' (not: ' + ', '.join(strangers[:5]) + ')' if strangers else ''}")
    compute = [n.name for n in model.graph.node if n.op_type in ("Conv", "MatMul", "Gemm")]
    # A node a fusion pass absorbed (a flash_attention's P V MatMul) is in its layer's fused_with.
    fused = {f for row in rows for f in row["fused_with"].split(" ") if f}
    missing = [n for n in compute if n not in names and n not in fused]
    check(not missing, f"{case}: every one of the {len(compute)} Conv / MatMul / Gemm nodes has its layer"
                       f"{' (not: ' + ', '.join(missing[:5]) + ')' if missing else ''}")
    macs = sum(int(row["macs"]) for row in rows)
    check(macs == stats["macs"], f"{case}: layers' MACs {macs} == the run's {stats['macs']}")
    dram = sum(int(row["dram_bytes"]) for row in rows)
    check(dram == stats["dram_reads_bytes"] + stats["dram_writes_bytes"],
          f"{case}: layers' DRAM bytes {dram} == the run's {stats['dram_reads_bytes'] + stats['dram_writes_bytes']}")
    roof = sum(float(row["roofline_cycles"]) for row in rows)
    ratio = stats["layer_report"]["roofline_ratio"]
    check(abs(stats["total_cycles"] / roof - ratio) < 1e-3 * ratio and ratio >= 1,
          f"{case}: simulated time / roofline sum = {ratio:.3f} (>= 1, and as the CSV's columns give it)")
    png = os.path.join(work, case + "-layers.png")
    p = subprocess.run([os.path.join(source_dir, "scripts", "plot"), "layers", os.path.join(case_dir, "layers.csv"),
                        "-o", png], capture_output=True, text=True)
    check(p.returncode == 0 and os.path.getsize(png) > 10000 if os.path.exists(png) else False,
          f"{case}: scripts/plot layers wrote {png}")

print(f"{failures} failed")
sys.exit(1 if failures else 0)
