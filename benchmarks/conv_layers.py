#!/usr/bin/python3
"""Every distinct convolution of ResNet-18 and every depthwise convolution of MobileNetV2
(batch 1, 224 x 224) as a one-op graph on one config (docs/benchmarks.md, "Convolutions").

  benchmarks/conv_layers.py BIN_DIR CONFIG WORK_DIR [resnet18|mobilenetv2]

Per layer: compiles it (kpu-compile -v names where each part runs), simulates it with
--stats, and prints the simulated cycles, the roofline bound and the share of it achieved,
the fabric's and the vector engines' mean busy share (which unit ran it), the DRAM bytes
simulated against the compiler's closed form (the .kpu's hints) and against kH*kW times the
input (what a host-side im2col would read for its patch matrix alone), and the wall time of
kpu-compile and kpu-sim. Inputs are zeros: the timing does not depend on the values.
"""
import json
import os
import subprocess
import sys
import time

# (name, C_in, C_out, H = W, kernel, stride, groups): ResNet-18's distinct convolutions.
RESNET18 = [("conv1", 3, 64, 224, 7, 2, 1), ("layer1.conv", 64, 64, 56, 3, 1, 1),
            ("layer2.0.conv1", 64, 128, 56, 3, 2, 1), ("layer2.0.downsample", 64, 128, 56, 1, 2, 1),
            ("layer2.conv", 128, 128, 28, 3, 1, 1), ("layer3.0.conv1", 128, 256, 28, 3, 2, 1),
            ("layer3.0.downsample", 128, 256, 28, 1, 2, 1), ("layer3.conv", 256, 256, 14, 3, 1, 1),
            ("layer4.0.conv1", 256, 512, 14, 3, 2, 1), ("layer4.0.downsample", 256, 512, 14, 1, 2, 1),
            ("layer4.conv", 512, 512, 7, 3, 1, 1)]
# MobileNetV2's depthwise 3x3 convolutions (channels, input size, stride).
MOBILENETV2 = [(f"dw{c}_{h}_s{s}", c, c, h, 3, s, c) for c, h, s in
               ((32, 112, 1), (96, 112, 2), (144, 56, 1), (144, 56, 2), (192, 28, 1), (192, 28, 2), (384, 14, 1),
                (576, 14, 1), (576, 14, 2), (960, 7, 1))]


def graph(c_in, c_out, size, k, stride, group):
    return {"tensors": [{"name": "x", "shape": [1, c_in, size, size], "role": "input"},
                        {"name": "w", "shape": [c_out, c_in // group, k, k], "role": "constant"},
                        {"name": "y", "role": "output"}],
            "ops": [{"op": "Conv", "name": "conv", "inputs": ["x", "w"], "outputs": ["y"],
                     "attributes": {"kernel_shape": [k, k], "strides": [stride, stride], "pads": [k // 2] * 4,
                                    "group": group}}]}


def main():
    if len(sys.argv) not in (4, 5):
        sys.exit(__doc__)
    bin_dir, config, work = sys.argv[1:4]
    layers = {"resnet18": RESNET18, "mobilenetv2": MOBILENETV2}[sys.argv[4] if len(sys.argv) == 5 else "resnet18"]
    os.makedirs(work, exist_ok=True)
    with open(config) as f:
        tiles = json.load(f)["compute_tiles"]  # busy shares are means over every tile's unit
    print(f"{'layer':<22} {'cycles':>9} {'roofline us':>11} {'bound':>7} {'% roof':>7} {'fabric':>7} {'vector':>7} "
          f"{'DRAM MB':>8} {'closed':>7} {'im2col':>7} {'compile s':>9} {'sim s':>6}")
    for name, c_in, c_out, size, k, stride, group in layers:
        base = os.path.join(work, name)
        with open(base + ".json", "w") as f:
            json.dump(graph(c_in, c_out, size, k, stride, group), f)
        start = time.perf_counter()
        subprocess.run([os.path.join(bin_dir, "kpu-compile"), base + ".json", "-o", base + ".kpu", "--config", config,
                        "-v"], check=True, stdout=open(base + ".compile.txt", "w"))
        compile_s = time.perf_counter() - start
        start = time.perf_counter()
        subprocess.run([os.path.join(bin_dir, "kpu-sim"), "--config", config, "--program", base + ".kpu", "--stats",
                        base + ".stats.json"], check=True, stdout=subprocess.DEVNULL)
        sim_s = time.perf_counter() - start
        with open(base + ".stats.json") as f:
            s = json.load(f)
        with open(base + ".kpu") as f:
            hints = json.load(f)["hints"]
        time_us = s["total_time_us"]
        fabric = s["op_metrics"].get("fabric", {}).get("total_time_us", 0) / (tiles * time_us)
        vector = s["vector"]["busy_time_us"] / (tiles * time_us)
        dram = s["dram_reads_bytes"] + s["dram_writes_bytes"]
        closed = hints["dram_read_bytes"] + hints["dram_write_bytes"]
        im2col = 4 * k * k * c_in * size * size
        print(f"{name:<22} {s['total_cycles']:>9} {s['roofline_time_us']:>11.1f} {s['roofline_bound']:>7} "
              f"{100 * s['roofline_efficiency']:>6.1f}% {100 * fabric:>6.1f}% {100 * vector:>6.1f}% {dram / 1e6:>8.2f} "
              f"{closed / 1e6:>7.2f} {im2col / 1e6:>7.2f} {compile_s:>9.2f} {sim_s:>6.2f}")


if __name__ == "__main__":
    main()
