"""KPUCompiler (seed 4): a model (an ONNX file, a graph JSON file, or a torch.nn.Module with
example inputs) compiled for a config into a KPUProgram."""
import os
import tempfile

import numpy as np

from . import _native
from .config import KPUConfig, KPUPrecision
from .errors import CalibrationError, CompilationError, KPUError, UnsupportedOpError, translate
from .program import KPUProgram


def as_config(config):
    """A KPUConfig from a KPUConfig, a config file path or a shipped SKU's name."""
    return config if isinstance(config, KPUConfig) else KPUConfig.load(config)


def _as_array(value):
    """A NumPy float32 array of an array-like or a torch tensor."""
    if hasattr(value, "detach"):
        value = value.detach().cpu().numpy()
    return np.ascontiguousarray(value, np.float32)


def _samples(data):
    """Calibration samples as the native compiler takes them: dicts of float32 arrays by input
    name ("" for a one-input model's bare array)."""
    return [{str(k): _as_array(v) for k, v in s.items()} if isinstance(s, dict) else {"": _as_array(s)}
            for s in (data or [])]


def _is_torch_module(model):
    try:
        import torch
    except ImportError:
        return False
    return isinstance(model, torch.nn.Module)


class KPUCompiler:
    """Compiles models for one of the simulator's configs, in FP32, BF16, FP16 or INT8
    (docs/quantization.md): kpu-compile's --precision, --calibration and --calibration-method."""

    def compile(self, model, config, precision=KPUPrecision.FP32, calibration_data=None, example_inputs=None,
                opt_level=2, disable_passes=(), calibration_method="entropy"):
        """opt_level and disable_passes are kpu-compile's -O and --disable-pass (docs/compiler.md, Passes).
        INT8 calibrates on `calibration_data`: at least 100 samples, each an array (a one-input
        model) or a dict of arrays by input name, by `calibration_method` (minmax, percentile,
        mse or entropy)."""
        config = as_config(config)
        passes = (int(opt_level), [str(p) for p in disable_passes])
        precision = KPUPrecision(precision)
        if precision == KPUPrecision.INT4:
            raise CompilationError(f"precision {precision.name}: the KPU compiler lowers float32, bfloat16, float16 "
                                   "and int8 graphs")
        calibration = _samples(calibration_data) if precision == KPUPrecision.INT8 else []
        passes = passes + (precision.value, calibration, str(calibration_method))
        if _is_torch_module(model):
            from .torch import export_onnx
            with tempfile.TemporaryDirectory(prefix="kpu-") as work:
                path = export_onnx(model, example_inputs, os.path.join(work, "model.onnx"))
                return self._compile_path(path, config, precision, passes, source=type(model).__name__)
        return self._compile_path(os.fspath(model), config, precision, passes, source=os.fspath(model))

    def _compile_path(self, path, config, precision, passes, source):
        if not os.path.exists(path):
            raise CompilationError(f"{path}: no such file")
        try:
            native = _native.Program.compile(path, config.path, list(config.overrides), *passes)
            native.check_fits(config.path, list(config.overrides))
        except _native.CalibrationError as e:
            raise CalibrationError(str(e)) from None
        except RuntimeError as e:
            raise translate(e) from None
        return KPUProgram.from_native(native, config, source_model=source, precision=precision)

    def validate_model(self, model, config, example_inputs=None):
        """The model's problems without compiling it (an empty list: it imports)."""
        try:
            if _is_torch_module(model):
                from .torch import check_module
                check_module(model, example_inputs)
                with tempfile.TemporaryDirectory(prefix="kpu-") as work:
                    from .torch import export_onnx
                    _native.check_model(export_onnx(model, example_inputs, os.path.join(work, "model.onnx")))
            else:
                _native.check_model(os.fspath(model))
        except UnsupportedOpError as e:
            return [f"unsupported operator: {op}" for op in e.ops]
        except KPUError as e:
            return [str(e)]
        except RuntimeError as e:
            error = translate(e)
            if isinstance(error, UnsupportedOpError):
                return [f"unsupported operator: {op}" for op in error.ops]
            return [str(error)]
        return []

    def estimate_memory(self, model, config, precision=KPUPrecision.FP32, example_inputs=None):
        """Bytes, from the compiled program's memory plan (KPUProgram.estimate_memory): the
        weights, the activations at their peak, the peak SRAM per compute tile and the peak DRAM."""
        estimate = self.compile(model, config, precision, example_inputs=example_inputs).estimate_memory()
        return {name: estimate[name] for name in ("weights", "activations", "peak_sram", "peak_dram")}
