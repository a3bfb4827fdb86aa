"""Ops and small models against PyTorch, through kpu.torch.compile (FX check, ONNX export,
importer) and through torch.onnx.export + KPUCompiler on the .onnx file."""
import os

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import kpu  # noqa: E402
import kpu.torch  # noqa: E402
from conftest import agree, config_path  # noqa: E402

nn = torch.nn
F = torch.nn.functional


class Lambda(nn.Module):
    def __init__(self, fn):
        super().__init__()
        self.fn = fn

    def forward(self, x):
        return self.fn(x)


class Residual(nn.Module):
    def __init__(self, d):
        super().__init__()
        self.fc = nn.Linear(d, d)

    def forward(self, x):
        return torch.add(x, self.fc(x))


class Cat(nn.Module):
    def forward(self, x):
        return torch.cat([torch.relu(x), torch.sigmoid(x)], dim=-1)


class MatmulT(nn.Module):
    def forward(self, x):
        return torch.matmul(x, x.transpose(-1, -2))


class PermuteView(nn.Module):
    def forward(self, x):  # (2, 6, 8) -> heads
        return x.view(2, 6, 2, 4).permute(0, 2, 1, 3).reshape(2, 2, 24)


class Embed(nn.Module):
    def __init__(self):
        super().__init__()
        self.emb = nn.Embedding(50, 24)
        self.register_buffer("idx", torch.tensor([3, 7, 1, 49, 0, 3]))

    def forward(self, x):
        return self.emb(self.idx) + x


# (name, module, input shape)
OPS = [
    ("arith", Lambda(lambda x: (x * 2.0 - x / 3.0) * x - x ** 2), (6, 24)),
    ("mean_sum_max", Lambda(lambda x: x.mean(dim=-1) + x.sum(dim=-1) - x.amax(-1)), (6, 24)),
    ("clamp", Lambda(lambda x: torch.clamp(x, -0.5, 0.5)), (6, 24)),
    ("exp_sqrt", Lambda(lambda x: torch.exp(x) + torch.sqrt(torch.abs(x))), (6, 24)),
    ("silu", nn.SiLU(), (6, 24)),
    ("leaky_relu", nn.LeakyReLU(0.1), (6, 24)),
    ("hardswish_hardsigmoid", nn.Sequential(nn.Hardswish(), nn.Hardsigmoid()), (6, 24)),
    ("transpose_slice", Lambda(lambda x: x.transpose(0, 1)[2:10].contiguous()), (6, 24)),
    ("split", Lambda(lambda x: torch.cat(x.split(12, -1)[::-1], -1)), (6, 24)),
    ("embedding", Embed(), (6, 24)),
    ("linear", nn.Linear(24, 40), (6, 24)),
    ("relu", nn.ReLU(), (6, 24)),
    ("gelu", nn.GELU(), (6, 24)),
    ("gelu_tanh", nn.GELU(approximate="tanh"), (6, 24)),
    ("sigmoid", nn.Sigmoid(), (6, 24)),
    ("tanh", nn.Tanh(), (6, 24)),
    ("softmax", nn.Softmax(dim=-1), (6, 24)),
    ("layernorm", nn.LayerNorm(24), (6, 24)),
    ("residual_add", Residual(24), (6, 24)),
    ("cat", Cat(), (6, 24)),
    ("matmul", MatmulT(), (2, 6, 8)),
    ("permute_view", PermuteView(), (2, 6, 8)),
    ("flatten", nn.Sequential(nn.Flatten(), nn.Linear(48, 10)), (2, 6, 8)),
    ("batchnorm2d", nn.BatchNorm2d(4), (1, 4, 8, 8)),
    ("maxpool2d", nn.MaxPool2d(2), (1, 4, 8, 8)),
    ("avgpool2d", nn.AvgPool2d(2, count_include_pad=False), (1, 4, 8, 8)),
    # The default: torch 1.13 exports a Pad of zeros before AveragePool, which imports as nothing.
    ("avgpool2d_default", nn.AvgPool2d(3, stride=2, padding=1), (1, 4, 9, 9)),
    ("adaptive_avgpool", nn.AdaptiveAvgPool2d(1), (1, 4, 8, 8)),
    ("relu6", nn.ReLU6(), (1, 4, 8, 8)),
]


def _randomize_bn(module):
    for m in module.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 1.5)
            m.weight.data.uniform_(0.5, 1.5)
            m.bias.data.uniform_(-0.5, 0.5)
    return module.eval()


@pytest.mark.parametrize("name,module,shape", OPS, ids=[o[0] for o in OPS])
def test_op_through_kpu_torch_compile(name, module, shape):
    module = _randomize_bn(module)
    x = torch.randn(*shape)
    compiled = kpu.torch.compile(module, (x,), config=config_path("edge"))
    agree(compiled(x).numpy(), module(x).detach().numpy())
    # Lowered from torch.fx's graph, but where FX cannot trace the module (a lone BatchNorm's
    # training branch, a Python loop over split's outputs): then through torch.onnx.
    assert compiled.frontend == ("onnx" if name in ("batchnorm2d", "split") else "fx")


@pytest.mark.parametrize("name,module,shape", OPS, ids=[o[0] for o in OPS])
def test_op_through_onnx_export(name, module, shape, tmp_path):
    module = _randomize_bn(module)
    x = torch.randn(*shape)
    path = str(tmp_path / f"{name}.onnx")
    torch.onnx.export(module, (x,), path, opset_version=17, input_names=["x"], output_names=["y"])
    program = kpu.KPUCompiler().compile(path, config_path("t64"))
    runtime = kpu.KPURuntime(config_path("t64"))
    runtime.load_program(program)
    agree(runtime.execute({"x": x.numpy()}).outputs["y"], module(x).detach().numpy())


class SmallCNN(nn.Module):
    """A CNN without Conv: BatchNorm, ReLU6, pooling, flatten, Linear (resnet18 and mobilenet_v2
    below have the convolutions)."""

    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(
            nn.BatchNorm2d(8), nn.ReLU6(), nn.MaxPool2d(2), nn.BatchNorm2d(8), nn.ReLU(),
            nn.AvgPool2d(2, count_include_pad=False), nn.AdaptiveAvgPool2d(1))
        self.head = nn.Linear(8, 10)

    def forward(self, x):
        return self.head(torch.flatten(self.features(x), 1))


class GPT2Block(nn.Module):
    """A GPT-2 block in plain torch: causal attention, tanh GELU, layernorm, residuals (written
    so that torch.fx traces it: fixed sizes, q, k and v sliced rather than unpacked)."""

    def __init__(self, d=64, heads=4, t=16):
        super().__init__()
        self.d, self.h, self.t = d, heads, t
        self.ln1, self.ln2 = nn.LayerNorm(d), nn.LayerNorm(d)
        self.qkv, self.proj = nn.Linear(d, 3 * d), nn.Linear(d, d)
        self.up, self.down = nn.Linear(d, 4 * d), nn.Linear(4 * d, d)
        self.register_buffer("mask", torch.triu(torch.full((t, t), float("-inf")), 1))

    def forward(self, x):
        d, h, t = self.d, self.h, self.t
        qkv = self.qkv(self.ln1(x))
        q, k, v = (qkv[:, i * d:(i + 1) * d].reshape(t, h, d // h).permute(1, 0, 2) for i in range(3))
        att = torch.softmax(q @ k.transpose(-1, -2) / (d // h) ** 0.5 + self.mask, dim=-1)
        y = (att @ v).permute(1, 0, 2).reshape(t, d)
        x = x + self.proj(y)
        return x + self.down(F.gelu(self.up(self.ln2(x)), approximate="tanh"))


def _through_fx(module, x, config):
    compiled = kpu.torch.compile(module, (x,), config=config_path(config), frontend="fx")
    assert compiled.frontend == "fx"
    return compiled(x).numpy()


def _through_onnx(module, x, config, tmp_path):
    """`module` exported by torch.onnx.export (opset 17) and run from the .onnx: the second front end."""
    path = str(tmp_path / "model.onnx")
    with torch.enable_grad():
        torch.onnx.export(module, (x,), path, opset_version=17, input_names=["x"], output_names=["y"])
    runtime = kpu.KPURuntime(config_path(config))
    runtime.load_program(kpu.KPUCompiler().compile(path, config_path(config)))
    return runtime.execute({"x": x.numpy()}).outputs["y"]


@pytest.mark.parametrize("config", ["edge", "t64"])
def test_small_cnn(config, tmp_path):
    m = _randomize_bn(SmallCNN())
    x = torch.randn(1, 8, 32, 32)
    agree(_through_fx(m, x, config), m(x).detach().numpy())
    agree(_through_onnx(m, x, config, tmp_path), m(x).detach().numpy())


@pytest.mark.parametrize("config", ["edge", "t64"])
def test_gpt2_block(config, tmp_path):
    m = GPT2Block().eval()
    x = torch.randn(16, 64)
    agree(_through_fx(m, x, config), m(x).detach().numpy())
    agree(_through_onnx(m, x, config, tmp_path), m(x).detach().numpy())
    # and simulated on the platform
    sim = kpu.torch.compile(m, (x,), config=config_path(config), mode=kpu.SimulationMode.CYCLE_ACCURATE)
    assert sim.frontend == "fx"
    agree(sim(x).numpy(), m(x).detach().numpy())
    assert sim.last_result.metrics.total_cycles > 0


def test_fx_check_names_modules_that_do_not_lower():
    m = nn.Sequential(nn.Linear(8, 8), nn.ELU(), nn.Softplus(), nn.LogSoftmax(-1))
    with pytest.raises(kpu.UnsupportedOpError) as e:
        kpu.torch.compile(m, (torch.randn(2, 8),), config=config_path("edge"))
    assert e.value.ops == ["ELU", "Softplus", "LogSoftmax"]


def test_backend_signature_with_an_fx_graph_module():
    m = nn.Sequential(nn.Linear(16, 32), nn.GELU(), nn.Linear(32, 4)).eval()
    gm = torch.fx.symbolic_trace(m)
    x = torch.randn(3, 16)
    fn = kpu.torch.backend(gm, [x])
    agree(fn(x).numpy(), m(x).detach().numpy())
    # A GraphModule returning a tuple gets a tuple back.
    pair = torch.fx.symbolic_trace(Lambda(lambda x: (torch.relu(x), x * 2.0)))
    a, b = kpu.torch.backend(pair, [x])(x)
    agree(a.numpy(), torch.relu(x).numpy())
    agree(b.numpy(), (x * 2.0).numpy())


@pytest.mark.parametrize("frontend", ["fx", "onnx"])
@pytest.mark.parametrize("config", ["edge", "t64"])
@pytest.mark.parametrize("arch", ["resnet18", "mobilenet_v2"])
def test_torchvision_models(arch, config, frontend):
    torchvision = pytest.importorskip("torchvision")
    m = _randomize_bn(getattr(torchvision.models, arch)(weights=None))
    x = torch.randn(1, 3, 224, 224)
    compiled = kpu.torch.compile(m, (x,), config=config_path(config), frontend=frontend)
    assert compiled.frontend == frontend
    agree(compiled(x).numpy(), m(x).detach().numpy())


def _bert_encoder():
    layer = nn.TransformerEncoderLayer(768, 12, 3072, dropout=0.0, activation="gelu", batch_first=True)
    return nn.TransformerEncoder(layer, 2, enable_nested_tensor=False).eval()


@pytest.mark.parametrize("config", ["edge", "t64"])
def test_transformer_encoder_bert_base_width(config, tmp_path):
    """2 layers of nn.TransformerEncoder at BERT-base width (768, 12 heads, 3072), 32 tokens."""
    m = _bert_encoder()
    x = torch.randn(1, 32, 768)
    compiled = kpu.torch.compile(m, (x,), config=config_path(config))
    assert compiled.frontend == "onnx"  # nn.TransformerEncoder branches on its inputs: FX cannot trace it
    agree(compiled(x).numpy(), m(x).detach().numpy())
    agree(_through_onnx(m, x, config, tmp_path), m(x).detach().numpy())


@pytest.mark.parametrize("config", ["edge", "t64"])
def test_gpt2_small_width_block(config, tmp_path):
    """The GPT-2 block at GPT-2 small's width (768, 12 heads), 64 tokens."""
    m = GPT2Block(768, 12, 64).eval()
    x = torch.randn(64, 768)
    agree(_through_fx(m, x, config), m(x).detach().numpy())
    agree(_through_onnx(m, x, config, tmp_path), m(x).detach().numpy())
