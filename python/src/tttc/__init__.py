"""tttc: JIT-compiled Test-Time-Training layers.

- tttc.Spec: a parsed spec (Spec.from_file("examples/mlp2.json"), Spec.from_dict({...})).
- tttc.torch.ttt: the op (autograd, torch.compile, CUDA kernels or the CPU reference).
- tttc.nn.TTTLayer: the published TTT layer (projections, gates, LayerNorm) around the op.
"""
from ._lib import CompileError, CudaError, NoGpuError, TTTCError, gpu_available
from .spec import Spec, StateTensor

__version__ = "0.1.0"
__all__ = ["Spec", "StateTensor", "TTTCError", "CompileError", "CudaError", "NoGpuError",
           "gpu_available", "__version__"]


def __getattr__(name):
    # tttc.torch and tttc.nn import torch: loaded on first use, so `import tttc` alone does not.
    if name in ("torch", "nn"):
        import importlib
        return importlib.import_module(f".{name}", __name__)
    raise AttributeError(f"module 'tttc' has no attribute {name!r}")
