#!/usr/bin/python3
"""The model zoo: whole reference networks with seeded random weights, exported to ONNX
(opset 17) with a seeded input and PyTorch's float32 output, for kpu-compile and kpu-sim.
Debian's torch / torchvision / onnx only, nothing downloaded.

  examples/models/zoo.py export OUT [MODEL ...] [--image-size N] [--seq N] [--layers N] [--seed N]
  examples/models/zoo.py compare MODEL_DIR OUTPUTS_DIR [--tolerance 0.01]
  examples/models/zoo.py list

`export` writes OUT/MODEL/ for each MODEL (default: all of them):
  model.onnx         the network, opset 17, fixed shapes, batch 1
  inputs/x.npy       its input (float32, seeded)
  expected/NAME.npy  PyTorch's output for it, one file per ONNX output
  meta.json          model, options, input and output names and shapes, parameter count, MACs

`compare` checks kpu-sim's `--outputs` directory against expected/: per output,
max |kpu - torch| <= tolerance x max(max |torch|, 1), seed 4's accuracy rule (max absolute
difference under 1 %) taken relative to the output's scale so that large logits are judged
alike. It prints one line per output and exits 1 if any differs.

Models (the defaults are the full-size networks; the options give smaller variants):
  resnet18     torchvision resnet18, image 224 (--image-size)
  mobilenetv2  torchvision mobilenet_v2, image 224 (--image-size)
  bert         BERT-base encoder: 12 post-LN layers (--layers), d 768, 12 heads, FFN 3072,
               erf GELU, sequence 128 (--seq); input: the embeddings [1, S, 768]
  gpt2         GPT-2 small: 12 pre-LN causal layers (--layers), d 768, 12 heads, tanh GELU,
               final LayerNorm, sequence 256 (--seq); input: the embeddings [1, S, 768]
  vit          ViT-Tiny/16: patch embedding, class token, 12 pre-LN layers (--layers), d 192,
               3 heads, MLP 768, classifier; image 224 (--image-size)
  yolo         a small YOLO-style detector: conv-BN-SiLU backbone with residual stages,
               nearest upsample + concat neck, 1x1 heads at strides 8, 16, 32 (3 anchors,
               80 classes); image 256 (--image-size)
The transformers are plain torch.nn modules (Linear, LayerNorm, softmax over the scores plus
an additive mask), so they export without custom ops. BatchNorm running statistics are
seeded random values (not the identity), so folding or applying them is actually checked.
"""
import argparse
import json
import math
import os
import shutil
import sys
import tempfile

MODELS = ("resnet18", "mobilenetv2", "bert", "gpt2", "vit", "yolo")
DEFAULT_TOLERANCE = 0.01


def _torch():
    import torch
    return torch


# ---------------------------------------------------------------------------------------------
# Transformer building blocks (plain torch.nn)


def _build_transformer_classes():
    torch = _torch()
    nn = torch.nn

    class SelfAttention(nn.Module):
        """Multi-head self-attention on [1, S, D]: heads split by view/permute; softmax of
        Q K^T / sqrt(dh) plus an additive mask (causal: -inf above the diagonal)."""

        def __init__(self, d, heads, seq, causal):
            super().__init__()
            self.h, self.dh = heads, d // heads
            self.q, self.k, self.v, self.o = (nn.Linear(d, d) for _ in range(4))
            mask = torch.triu(torch.full((seq, seq), float("-inf")), 1) if causal else torch.zeros(seq, seq)
            self.register_buffer("mask", mask)
            self.causal = causal

        def forward(self, x):
            b, s, d = x.shape
            split = lambda t: t.view(b, s, self.h, self.dh).permute(0, 2, 1, 3)  # noqa: E731
            q, k, v = split(self.q(x)), split(self.k(x)), split(self.v(x))
            scores = q @ k.transpose(-1, -2) / math.sqrt(self.dh)
            if self.causal:
                scores = scores + self.mask
            a = torch.softmax(scores, dim=-1)
            return self.o((a @ v).permute(0, 2, 1, 3).reshape(b, s, d))

    class Layer(nn.Module):
        """One encoder layer: post-LN (BERT) or pre-LN (GPT-2, ViT)."""

        def __init__(self, d, heads, ffn, seq, causal, pre_ln, gelu):
            super().__init__()
            self.attn = SelfAttention(d, heads, seq, causal)
            self.ln1, self.ln2 = nn.LayerNorm(d), nn.LayerNorm(d)
            self.up, self.down = nn.Linear(d, ffn), nn.Linear(ffn, d)
            self.pre_ln, self.gelu = pre_ln, gelu

        def ffn(self, x):
            return self.down(nn.functional.gelu(self.up(x), approximate=self.gelu))

        def forward(self, x):
            if self.pre_ln:
                x = x + self.attn(self.ln1(x))
                return x + self.ffn(self.ln2(x))
            x = self.ln1(x + self.attn(x))
            return self.ln2(x + self.ffn(x))

    class Encoder(nn.Module):
        """A stack of layers with an optional final LayerNorm (GPT-2's ln_f)."""

        def __init__(self, layers, d, heads, ffn, seq, causal, pre_ln, gelu, final_ln):
            super().__init__()
            self.layers = nn.ModuleList(Layer(d, heads, ffn, seq, causal, pre_ln, gelu) for _ in range(layers))
            self.ln_f = nn.LayerNorm(d) if final_ln else None

        def forward(self, x):
            for layer in self.layers:
                x = layer(x)
            return self.ln_f(x) if self.ln_f is not None else x

    class ViT(nn.Module):
        """ViT: a 16x16/16 Conv patch embedding, a class token, learned positions, the
        encoder, LayerNorm and a linear classifier on the class token."""

        def __init__(self, image, layers, d=192, heads=3, mlp=768, classes=1000, patch=16):
            super().__init__()
            tokens = (image // patch) ** 2 + 1
            self.patch = nn.Conv2d(3, d, patch, patch)
            self.cls = nn.Parameter(torch.randn(1, 1, d) * 0.02)
            self.pos = nn.Parameter(torch.randn(1, tokens, d) * 0.02)
            self.encoder = Encoder(layers, d, heads, mlp, tokens, False, True, "none", True)
            self.head = nn.Linear(d, classes)

        def forward(self, x):
            # NHWC, then the patches as rows: the compiler cancels this Transpose against its
            # convolution's own NCHW one, where flatten(2).transpose(1, 2) would be a copy.
            p = self.patch(x).permute(0, 2, 3, 1).flatten(1, 2)
            h = self.encoder(torch.cat([self.cls, p], dim=1) + self.pos)
            return self.head(h[:, 0])

    return Encoder, ViT


# ---------------------------------------------------------------------------------------------
# The YOLO-style detector (plain torch ops)


def _build_yolo_class():
    torch = _torch()
    nn = torch.nn

    class ConvBnSilu(nn.Sequential):
        def __init__(self, c_in, c_out, k=3, s=1):
            super().__init__(nn.Conv2d(c_in, c_out, k, s, k // 2, bias=False), nn.BatchNorm2d(c_out), nn.SiLU())

    class Bottleneck(nn.Module):
        def __init__(self, c):
            super().__init__()
            self.cv1, self.cv2 = ConvBnSilu(c, c, 1), ConvBnSilu(c, c, 3)

        def forward(self, x):
            return x + self.cv2(self.cv1(x))

    def stage(c_in, c_out):
        return nn.Sequential(ConvBnSilu(c_in, c_out, 3, 2), Bottleneck(c_out))

    class Yolo(nn.Module):
        """Backbone: stem 3x3/2 (16) and stages to 32, 64 (P3, /8), 128 (P4, /16), 256 (P5,
        /32). Neck: P5 -> 1x1 -> upsample x2 -> concat P4 -> conv; -> upsample -> concat P3 ->
        conv. Heads: 1x1 convs to 3 x (5 + 80) channels at each scale."""

        def __init__(self, classes=80, anchors=3):
            super().__init__()
            self.stem = ConvBnSilu(3, 16, 3, 2)
            self.s2, self.s3, self.s4, self.s5 = stage(16, 32), stage(32, 64), stage(64, 128), stage(128, 256)
            self.lat5 = ConvBnSilu(256, 128, 1)
            self.fuse4 = ConvBnSilu(256, 128, 3)
            self.lat4 = ConvBnSilu(128, 64, 1)
            self.fuse3 = ConvBnSilu(128, 64, 3)
            self.up = nn.Upsample(scale_factor=2, mode="nearest")
            out = anchors * (5 + classes)
            self.head3, self.head4, self.head5 = nn.Conv2d(64, out, 1), nn.Conv2d(128, out, 1), nn.Conv2d(256, out, 1)

        def forward(self, x):
            p3 = self.s3(self.s2(self.stem(x)))
            p4 = self.s4(p3)
            p5 = self.s5(p4)
            n4 = self.fuse4(torch.cat([self.up(self.lat5(p5)), p4], dim=1))
            n3 = self.fuse3(torch.cat([self.up(self.lat4(n4)), p3], dim=1))
            return self.head3(n3), self.head4(n4), self.head5(p5)

    return Yolo


# ---------------------------------------------------------------------------------------------
# Building and exporting


def default_options(model):
    """The full-size network's options."""
    return {"resnet18": {"image_size": 224}, "mobilenetv2": {"image_size": 224},
            "bert": {"seq": 128, "layers": 12}, "gpt2": {"seq": 256, "layers": 12},
            "vit": {"image_size": 224, "layers": 12}, "yolo": {"image_size": 256}}[model]


def _seed_batchnorm(module, gen):
    """Seeded running statistics and affine parameters for every BatchNorm."""
    torch = _torch()
    for m in module.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            c = m.num_features
            m.running_mean.copy_(torch.randn(c, generator=gen) * 0.1)
            m.running_var.copy_(torch.rand(c, generator=gen) * 0.5 + 0.75)
            m.weight.data.copy_(torch.rand(c, generator=gen) * 0.5 + 0.75)
            m.bias.data.copy_(torch.randn(c, generator=gen) * 0.1)


def build(model, options, seed):
    """(module in eval mode, input tensor, output names) for one model with its options."""
    torch = _torch()
    import torchvision
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed + 1)
    if model in ("resnet18", "mobilenetv2"):
        net = torchvision.models.resnet18(weights=None) if model == "resnet18" else torchvision.models.mobilenet_v2(weights=None)
        _seed_batchnorm(net, gen)
        x = torch.randn(1, 3, options["image_size"], options["image_size"], generator=gen)
        outputs = ["y"]
    elif model in ("bert", "gpt2"):
        Encoder, _ = _build_transformer_classes()
        causal = model == "gpt2"
        net = Encoder(options["layers"], 768, 12, 3072, options["seq"], causal=causal, pre_ln=causal,
                      gelu="tanh" if causal else "none", final_ln=causal)
        x = torch.randn(1, options["seq"], 768, generator=gen)
        outputs = ["y"]
    elif model == "vit":
        _, ViT = _build_transformer_classes()
        net = ViT(options["image_size"], options["layers"])
        x = torch.randn(1, 3, options["image_size"], options["image_size"], generator=gen)
        outputs = ["y"]
    elif model == "yolo":
        net = _build_yolo_class()()
        _seed_batchnorm(net, gen)
        x = torch.randn(1, 3, options["image_size"], options["image_size"], generator=gen)
        outputs = ["p3", "p4", "p5"]
    else:
        raise ValueError("unknown model '%s' (models: %s)" % (model, ", ".join(MODELS)))
    net.eval()
    return net, x, outputs


def count_macs(net, x):
    """MACs of the Conv and Linear layers and the attention matmuls, from forward hooks."""
    torch = _torch()
    total = [0]

    def conv_hook(m, inp, out):
        total[0] += out.numel() * (m.in_channels // m.groups) * m.kernel_size[0] * m.kernel_size[1]

    def linear_hook(m, inp, out):
        total[0] += out.numel() * m.in_features

    handles = []
    for m in net.modules():
        if isinstance(m, torch.nn.Conv2d):
            handles.append(m.register_forward_hook(conv_hook))
        elif isinstance(m, torch.nn.Linear):
            handles.append(m.register_forward_hook(linear_hook))
        elif type(m).__name__ == "SelfAttention":
            handles.append(m.register_forward_hook(
                lambda m, inp, out: total.__setitem__(0, total[0] + 2 * inp[0].shape[0] * inp[0].shape[1] ** 2 * inp[0].shape[2])))
    with torch.no_grad():
        net(x)
    for h in handles:
        h.remove()
    return total[0]


def export(model, out_dir, options, seed):
    """Writes OUT_DIR (model.onnx, inputs/, expected/, meta.json) atomically: a half-written
    directory is never seen by a concurrent reader."""
    import numpy as np
    torch = _torch()
    net, x, outputs = build(model, options, seed)
    parent = os.path.dirname(os.path.abspath(out_dir))
    os.makedirs(parent, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=".zoo-", dir=parent)
    try:
        os.makedirs(os.path.join(tmp, "inputs"))
        os.makedirs(os.path.join(tmp, "expected"))
        with torch.no_grad():
            want = net(x)
            want = want if isinstance(want, tuple) else (want,)
            torch.onnx.export(net, (x,), os.path.join(tmp, "model.onnx"), opset_version=17, input_names=["x"],
                              output_names=outputs, do_constant_folding=True)
        np.save(os.path.join(tmp, "inputs", "x.npy"), x.numpy().astype(np.float32))
        for name, value in zip(outputs, want):
            np.save(os.path.join(tmp, "expected", name + ".npy"), value.numpy().astype(np.float32))
        meta = {"model": model, "options": options, "seed": seed, "opset": 17,
                "inputs": {"x": list(x.shape)}, "outputs": {n: list(v.shape) for n, v in zip(outputs, want)},
                "parameters": sum(p.numel() for p in net.parameters()), "macs": count_macs(net, x)}
        with open(os.path.join(tmp, "meta.json"), "w") as f:
            json.dump(meta, f, indent=1)
        if os.path.isdir(out_dir):
            shutil.rmtree(out_dir)
        os.replace(tmp, out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return meta


def compare(model_dir, outputs_dir, tolerance):
    """Lines describing each output and whether all are within tolerance."""
    import numpy as np
    with open(os.path.join(model_dir, "meta.json")) as f:
        meta = json.load(f)
    lines, ok = [], True
    for name in meta["outputs"]:
        want = np.load(os.path.join(model_dir, "expected", name + ".npy"))
        path = os.path.join(outputs_dir, name + ".npy")
        if not os.path.exists(path):
            lines.append("%s: no output %s -> FAIL" % (name, path))
            ok = False
            continue
        got = np.load(path)
        if got.shape != want.shape:
            lines.append("%s: shape %s, PyTorch's %s -> FAIL" % (name, list(got.shape), list(want.shape)))
            ok = False
            continue
        scale = max(float(np.abs(want).max()), 1.0)
        err = float(np.abs(got.astype(np.float64) - want).max())
        good = bool(np.isfinite(got).all()) and err <= tolerance * scale
        ok = ok and good
        lines.append("%s: shape %s, max |kpu - torch| %.3g, max(|torch|, 1) %.3g, relative %.3g (tolerance %g) -> %s"
                     % (name, list(got.shape), err, scale, err / scale, tolerance, "ok" if good else "FAIL"))
    return lines, ok


def main(argv):
    p = argparse.ArgumentParser(prog="examples/models/zoo.py", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__.split("\n\n", 1)[1])
    sub = p.add_subparsers(dest="command", required=True)
    e = sub.add_parser("export", help="build the models and write ONNX, input and PyTorch's output")
    e.add_argument("out", help="output directory (in the build tree): one subdirectory per model")
    e.add_argument("models", nargs="*", help="models (default: all): " + ", ".join(MODELS))
    e.add_argument("--image-size", type=int, help="input height and width of the image models")
    e.add_argument("--seq", type=int, help="sequence length of bert and gpt2")
    e.add_argument("--layers", type=int, help="encoder layers of bert, gpt2 and vit")
    e.add_argument("--seed", type=int, default=0, help="torch.manual_seed of weights and input (default 0)")
    e.add_argument("--flat", action="store_true", help="write the (single) model into OUT itself, not OUT/MODEL")
    c = sub.add_parser("compare", help="compare kpu-sim's --outputs with PyTorch's")
    c.add_argument("model_dir")
    c.add_argument("outputs_dir")
    c.add_argument("--tolerance", type=float, default=DEFAULT_TOLERANCE,
                   help="max |kpu - torch| / max(|torch|, 1) allowed (default 0.01)")
    sub.add_parser("list", help="list the models and their default options")
    args = p.parse_args(argv)
    if args.command == "list":
        for m in MODELS:
            print("%-12s %s" % (m, " ".join("%s=%s" % kv for kv in default_options(m).items())))
        return 0
    if args.command == "compare":
        lines, ok = compare(args.model_dir, args.outputs_dir, args.tolerance)
        print("\n".join(lines))
        return 0 if ok else 1
    models = args.models or list(MODELS)
    unknown = [m for m in models if m not in MODELS]
    if unknown:
        p.error("unknown model '%s' (models: %s)" % (unknown[0], ", ".join(MODELS)))
    if args.flat and len(models) != 1:
        p.error("--flat writes one model: name exactly one")
    for model in models:
        options = default_options(model)
        for key in ("image_size", "seq", "layers"):
            value = getattr(args, key)
            if value is not None and key in options:
                if value < 1:
                    p.error("--%s %d: must be positive" % (key.replace("_", "-"), value))
                options[key] = value
        target = args.out if args.flat else os.path.join(args.out, model)
        meta = export(model, target, options, args.seed)
        print("%s: %s, %.3g M parameters, %.3g GMACs -> %s" % (model, " ".join("%s=%s" % kv for kv in options.items()),
                                                              meta["parameters"] / 1e6, meta["macs"] / 1e9, target))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
