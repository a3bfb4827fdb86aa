#!/usr/bin/python3
"""torchvision resnet18 and a BERT-base encoder layer through the Python package on one
config (docs/python.md, "Benchmarks"):

  PYTHONPATH=build/python /usr/bin/python3 benchmarks/python_models.py [CONFIG]   (default t64)

Per model (random weights, eval, batch 1; resnet18 at 224x224, the BERT layer at 128 tokens):
kpu.torch.compile's wall time, the cycles of the run (FUNCTIONAL: the compiler's whole-program
estimate; CYCLE_ACCURATE: the simulation), the wall time of execute() in each mode (the
median of 3 after a first call, which for CYCLE_ACCURATE also starts the config's worker and
elaborates its platform) and PyTorch eager's on the same inputs (median of 5 after a warm-up),
the ratio of each to eager, and the outputs' agreement with PyTorch. A model the compiler does
not take yet is reported as such.
"""
import statistics
import sys
import time

import torch

import kpu
import kpu.torch


def median_wall(fn, runs):
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def bench(name, module, x, config):
    module.eval()
    with torch.no_grad():
        want = module(x)
        eager = median_wall(lambda: module(x), 1) and median_wall(lambda: module(x), 5)
    start = time.perf_counter()
    try:
        functional = kpu.torch.compile(module, (x,), config=config)
    except kpu.KPUError as e:
        print(f"{name}: not compiled: {e}")
        return
    compile_s = time.perf_counter() - start
    simulated = kpu.torch.compile(module, (x,), config=config, mode=kpu.SimulationMode.CYCLE_ACCURATE)
    print(f"{name} on {config}: compile {compile_s:.2f} s, PyTorch eager {eager * 1e3:.1f} ms")
    for mode, compiled in (("FUNCTIONAL", functional), ("CYCLE_ACCURATE", simulated)):
        first = time.perf_counter()
        got = compiled(x)
        first = time.perf_counter() - first
        wall = median_wall(lambda: compiled(x), 3)
        err = float((got - want).abs().max()) / float(want.abs().max())
        m = compiled.last_result.metrics
        print(f"  {mode:15s} cycles {m.total_cycles:>10}  execute {wall * 1e3:8.1f} ms (first {first:.2f} s)  "
              f"{wall / eager:6.1f} x eager  max err / max|out| {err:.1e}")


def main():
    config = sys.argv[1] if len(sys.argv) > 1 else "t64"
    torch.manual_seed(0)
    import torchvision
    bench("resnet18", torchvision.models.resnet18(weights=None), torch.randn(1, 3, 224, 224), config)
    layer = torch.nn.TransformerEncoderLayer(768, 12, 3072, dropout=0.0, activation="gelu", batch_first=True)
    bench("BERT-base layer", torch.nn.TransformerEncoder(layer, 1, enable_nested_tensor=False),
          torch.randn(1, 128, 768), config)


if __name__ == "__main__":
    main()
