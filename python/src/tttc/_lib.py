"""ctypes binding of libtttc's C ABI (capi/tttc.h): loading the library, status codes to Python
exceptions, and packing tensors (pointer, dtype, shape, strides) into `tttc_tensor` arrays.

A C ABI through ctypes rather than a compiled extension: libtttc has no Python or torch types in
it, so one build serves every Python and PyTorch version (nothing to rebuild when torch changes).
"""
from __future__ import annotations

import ctypes
import os
import struct
import threading
from pathlib import Path

_c_double_p = ctypes.POINTER(ctypes.c_double)


class TTTCError(RuntimeError):
    """A failure inside libtttc (message from tttc_last_error)."""


class CompileError(TTTCError):
    """NVRTC rejected the generated kernel source."""


class NoGpuError(TTTCError):
    """No CUDA driver or no GPU."""


class CudaError(TTTCError):
    """A CUDA driver call failed."""


_ERRORS = {1: TTTCError, 2: ValueError, 3: CompileError, 4: NoGpuError, 5: CudaError}


class MemoryPlan(ctypes.Structure):
    _fields_ = [(name, ctypes.c_int64) for name in (
        "checkpoints", "state_bytes", "checkpoint_bytes", "forward_workspace_bytes",
        "backward_workspace_bytes", "forward_total_bytes")]


def _library_path() -> Path:
    env = os.environ.get("TTTC_LIBRARY")
    if env:
        return Path(env)
    return Path(__file__).with_name("libtttc.so")


_lock = threading.Lock()
_lib = None


def lib() -> ctypes.CDLL:
    """The loaded libtttc (TTTC_LIBRARY overrides the copy inside the package)."""
    global _lib
    if _lib is not None:
        return _lib
    with _lock:
        if _lib is None:
            path = _library_path()
            if not path.exists():
                raise ImportError(f"tttc: {path} not found (set TTTC_LIBRARY or reinstall tttc)")
            _lib = _declare(ctypes.CDLL(str(path)))
    return _lib


def _declare(l: ctypes.CDLL) -> ctypes.CDLL:
    vp, i64, i32, dp = ctypes.c_void_p, ctypes.c_int64, ctypes.c_int, _c_double_p
    l.tttc_version.restype = ctypes.c_char_p
    l.tttc_last_error.restype = ctypes.c_char_p
    l.tttc_gpu_available.argtypes = [ctypes.POINTER(ctypes.c_char_p)]
    l.tttc_spec_parse.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.POINTER(vp)]
    l.tttc_spec_load_file.argtypes = [ctypes.c_char_p, ctypes.POINTER(vp)]
    l.tttc_spec_free.argtypes = [vp]
    l.tttc_spec_free.restype = None
    l.tttc_spec_info.argtypes = [vp]
    l.tttc_spec_info.restype = ctypes.c_char_p
    l.tttc_reference_forward.argtypes = [vp, i64, i64, i64, i32] + [vp] * 11
    l.tttc_reference_backward.argtypes = [vp, i64, i64, i64] + [vp] * 7 + [vp, i64, vp, vp, i32] + [vp] * 8
    l.tttc_kernel_get.argtypes = [vp, i32, ctypes.POINTER(vp)]
    l.tttc_kernel_get_for_launch.argtypes = [vp, i32, i64, ctypes.POINTER(vp)]
    l.tttc_kernel_memory.argtypes = [vp, i64, i64, i64, ctypes.POINTER(MemoryPlan)]
    l.tttc_kernel_forward.argtypes = [vp, vp, vp, ctypes.c_uint64, vp]
    l.tttc_kernel_backward.argtypes = [vp, vp, vp, ctypes.c_uint64, vp]
    # Decode (docs/decode.md).
    l.tttc_reference_decode.argtypes = [vp, i64, i64, i64] + [vp] * 11
    l.tttc_reference_prefill.argtypes = [vp, i64, i64, i64, i32] + [vp] * 12
    l.tttc_decode_state_bytes.argtypes = [vp, i64, i64, ctypes.POINTER(i64)]
    l.tttc_kernel_prefill_workspace.argtypes = [vp, i64, i64, i64, ctypes.POINTER(i64)]
    l.tttc_kernel_prefill.argtypes = [vp, vp, vp, ctypes.c_uint64, vp]
    l.tttc_kernel_decode.argtypes = [vp, vp, vp]
    return l


def check(status: int) -> None:
    """Raises the exception for a non-zero libtttc status, with the library's message."""
    if status:
        message = lib().tttc_last_error().decode(errors="replace")
        raise _ERRORS.get(status, TTTCError)(message)


def gpu_available() -> tuple[bool, str]:
    reason = ctypes.c_char_p()
    ok = lib().tttc_gpu_available(ctypes.byref(reason))
    return bool(ok), (reason.value or b"").decode()


# tttc_tensor: data, dtype, ndim, shape[4], strides[4]; all 64-bit, no padding.
TENSOR_FORMAT = "<Qqq4q4q"
TENSOR_BYTES = struct.calcsize(TENSOR_FORMAT)
_pack_into = struct.Struct(TENSOR_FORMAT).pack_into
DTYPE_CODES = {"f32": 0, "f16": 1, "bf16": 2, "i32": 3}


_structs: dict = {}


def pack_tensors(entries) -> ctypes.Array:
    """entries: (data_ptr, dtype_code, shape, strides) per tensor, or None for an absent one.
    One struct.pack_into call for the whole array (the launch path is host-time critical)."""
    n = len(entries)
    st = _structs.get(n)
    if st is None:
        st = _structs[n] = struct.Struct("<" + TENSOR_FORMAT[1:] * n)
    flat = []
    for e in entries:
        if e is None:
            flat.extend(_ABSENT)  # data == NULL
            continue
        ptr, code, shape, strides = e
        pad = _PAD[len(shape)]
        flat += (ptr, code, len(shape), *shape, *pad, *strides, *pad)
    buf = ctypes.create_string_buffer(st.size)
    st.pack_into(buf, 0, *flat)
    return buf


_ABSENT = (0,) * 11
_PAD = [(0,) * (4 - n) for n in range(5)]
