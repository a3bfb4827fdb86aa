"""kpu: the Stillwater KPU simulator from Python (docs/python.md), with the names and types of
seed 4: KPUConfig, KPUCompiler, KPUProgram, KPURuntime, KPUPerformanceMetrics and the errors.
`import kpu.torch` for the PyTorch front end, `kpu.calibration` for INT8 calibration."""
from .config import KPUConfig, KPUPrecision, SimulationMode
from .errors import (CalibrationError, CompilationError, ExecutionError, InputValidationError, KPUError,  # noqa: A004
                     MemoryError, UnsupportedOpError)
from .program import KPUOp, KPUProgram, KPUTensor, TileConfig
from .compiler import KPUCompiler
from .runtime import KPUExecutionResult, KPUPerformanceMetrics, KPURuntime, KPUSimulator

__all__ = ["KPUConfig", "KPUPrecision", "SimulationMode", "KPUError", "CompilationError", "CalibrationError",
           "UnsupportedOpError", "MemoryError", "InputValidationError", "ExecutionError", "KPUOp", "KPUProgram", "KPUTensor", "TileConfig",
           "KPUCompiler", "KPUExecutionResult", "KPUPerformanceMetrics", "KPURuntime", "KPUSimulator"]
