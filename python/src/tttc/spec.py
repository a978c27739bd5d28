"""tttc.Spec: a parsed, validated tttc spec (see docs/spec.md) held by libtttc, with the facts the
op needs (head_dim, mini_batch, widths, the packed state layout). Parse specs once, outside any
traced region; the op itself receives the spec's canonical JSON (its `key`), a plain string that
torch.compile treats as a constant.
"""
from __future__ import annotations

import ctypes
import json
import math
import os
import threading
from dataclasses import dataclass

from . import _lib


@dataclass(frozen=True)
class StateTensor:
    name: str          # "W1", "b1", ...
    shape: tuple       # W: (d_in, d_out); b: (d_out,)
    offset: int        # in floats within one head's packed state


class Spec:
    """A tttc spec. Build with Spec.from_file, Spec.from_dict or Spec.from_json."""

    def __init__(self, handle: ctypes.c_void_p):
        self._handle = handle
        info = json.loads(_lib.lib().tttc_spec_info(handle).decode())
        self.name: str = info["name"]
        self.key: str = info["canonical"]          # canonical JSON: what the op receives
        self.signature: str = info["signature"]
        self.model: str = info["model"]
        self.depth: int = info["depth"]
        self.head_dim: int = info["head_dim"]
        self.mini_batch: int = info["mini_batch"]
        self.checkpoint_group: int = info["checkpoint_group"]
        self.causal: bool = info["causal"]
        self.dtype: str = info["dtype"]            # "f32", "f16", "bf16"
        self.widths: tuple = tuple(info["widths"])
        self.state_floats: int = info["state_floats"]
        self.state_layout: tuple = tuple(
            StateTensor(t["name"], tuple(t["shape"]), t["offset"]) for t in info["state_layout"])
        self.passes: tuple = tuple(info["passes"])
        # Floats of each state tensor, in packing order (what unpack_state splits).
        self.state_sizes: tuple = tuple(math.prod(t.shape) for t in self.state_layout)
        self._kernels: dict = {}
        self._lock = threading.Lock()

    # --- construction ----------------------------------------------------------------------
    @classmethod
    def from_json(cls, text: str, origin: str = "<string>") -> "Spec":
        handle = ctypes.c_void_p()
        _lib.check(_lib.lib().tttc_spec_parse(text.encode(), origin.encode(), ctypes.byref(handle)))
        return _register(cls(handle))

    @classmethod
    def from_file(cls, path: str | os.PathLike) -> "Spec":
        handle = ctypes.c_void_p()
        _lib.check(_lib.lib().tttc_spec_load_file(os.fspath(path).encode(), ctypes.byref(handle)))
        return _register(cls(handle))

    @classmethod
    def from_dict(cls, spec: dict) -> "Spec":
        text = json.dumps({"tttc_spec": 1, **spec})
        return cls.from_json(text, origin="<dict>")

    def __del__(self):
        handle, self._handle = getattr(self, "_handle", None), None
        try:
            if handle and _lib._lib is not None:
                _lib._lib.tttc_spec_free(handle)
        except Exception:  # interpreter shutdown: modules may already be torn down
            pass

    def __reduce__(self):
        # Specs are immutable: pickling (torch.save of a module, deepcopy, spawn) keeps the
        # canonical JSON and restores the registered Spec of that key.
        return (spec_for_key, (self.key,))

    def __repr__(self) -> str:
        return f"tttc.Spec({self.name or self.signature[:12]}: {self.key})"

    # --- facts -----------------------------------------------------------------------------
    @property
    def torch_dtype(self):
        import torch
        return {"f32": torch.float32, "f16": torch.float16, "bf16": torch.bfloat16}[self.dtype]

    def checkpoints(self, T: int) -> int:
        """ceil(ceil(T / K) / checkpoint_group): saved states per (b, h)."""
        return math.ceil(math.ceil(T / self.mini_batch) / self.checkpoint_group)

    def state_shapes(self, heads: int, batch: int | None = None) -> list:
        """Shapes of the state list [W1, b1, ...]: [H, ...], or [B, H, ...] with a batch."""
        lead = (heads,) if batch is None else (batch, heads)
        return [lead + t.shape for t in self.state_layout]

    # --- GPU kernels (libtttc keeps them for the life of the process) ----------------------
    def kernel(self, device: int, launch_heads: int = 0) -> ctypes.c_void_p:
        """The loaded kernels on `device`, for launches of B*H = launch_heads (0: unknown), which
        decides the schedule's launch-size choices (the query split for few heads)."""
        key = (device, launch_heads)
        k = self._kernels.get(key)
        if k is None:
            with self._lock:
                k = self._kernels.get(key)
                if k is None:
                    k = ctypes.c_void_p()
                    _lib.check(_lib.lib().tttc_kernel_get_for_launch(
                        self._handle, device, launch_heads, ctypes.byref(k)))
                    self._kernels[key] = k
        return k

    def inference_variant(self) -> "Spec":
        """The forward-only variant with one checkpoint group over the whole sequence (so the
        forward saves only the initial state): used when no gradient is needed."""
        v = getattr(self, "_inference", None)
        if v is None:
            d = json.loads(self.key)
            d["checkpoint_group"] = 4096
            d["passes"] = ["forward"]
            v = self._inference = spec_for_key(json.dumps(d, separators=(",", ":")))
        return v

    def decode_variant(self) -> "Spec":
        """The variant that builds the forward (for prefill) and the decode kernel, with one
        checkpoint group (prefill saves only the initial state): what tttc.torch.ttt_prefill and
        ttt_decode run on CUDA, whatever this spec's passes say."""
        v = getattr(self, "_decode", None)
        if v is None:
            d = json.loads(self.key)
            d["checkpoint_group"] = 4096
            d["passes"] = ["forward", "decode"]
            v = self._decode = spec_for_key(json.dumps(d, separators=(",", ":")))
        return v


_registry: dict = {}
_registry_lock = threading.Lock()


def _register(spec: Spec) -> Spec:
    with _registry_lock:
        _registry.setdefault(spec.key, spec)
    return spec


def spec_for_key(key: str) -> Spec:
    """The Spec of a canonical JSON key (parsed on first use: keys are valid spec text)."""
    s = _registry.get(key)
    if s is None:
        s = Spec.from_json(key, origin="<spec key>")
    return _registry.get(key, s)
