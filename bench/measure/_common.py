"""Shared pieces of the measurement engine: the OOM error, device checks, JSON-flat values."""
from __future__ import annotations

import contextlib
import json
from typing import Any, Iterator

import torch

MIB = 1024 * 1024


class MeasureOOM(RuntimeError):
    """The device ran out of memory at this batch size; the runner records status ``"oom"``.

    Never retried at a smaller batch: a silently shrunken batch would make the number lie
    (timm's ``benchmark.py`` batch decay misled users exactly that way).
    """


def is_oom(exc: BaseException) -> bool:
    """Whether ``exc`` is an out-of-memory failure (CUDA, CPU allocator, or an already-wrapped one)."""
    if isinstance(exc, (MeasureOOM, torch.OutOfMemoryError, MemoryError)):
        return True
    msg = str(exc)
    # CPU allocator failures are plain RuntimeErrors from c10's DefaultCPUAllocator.
    return isinstance(exc, RuntimeError) and (
        "can't allocate memory" in msg or "not enough memory" in msg or "out of memory" in msg.lower()
    )


@contextlib.contextmanager
def oom_guard(what: str) -> Iterator[None]:
    """Turn any allocator OOM raised inside the block into ``MeasureOOM`` (with the original as cause)."""
    try:
        yield
    except MeasureOOM:
        raise
    except (RuntimeError, MemoryError) as exc:
        if is_oom(exc):
            raise MeasureOOM(f"out of memory during {what}: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}") from exc
        raise


class DeviceUnavailable(ValueError, RuntimeError):
    """A CUDA device asked for on a machine where torch sees none (a bad input to the CLI, a runtime fault to a
    measurement called from Python: either ``except`` catches it)."""


def resolve_device(device: str | torch.device) -> str:
    """The one device resolution of the suite (CLI, runner, every measurement): ``auto`` -> ``cuda`` when torch
    sees a GPU else ``cpu``; ``cpu``/``cuda``/``cuda:N`` checked; returns the canonical string."""
    name = str(device)
    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    try:
        dev = torch.device(name)
    except RuntimeError:
        dev = None
    if dev is None or dev.type not in ("cpu", "cuda"):
        raise ValueError(f"unknown device {name!r}; choose auto, cpu, cuda or cuda:N")
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise DeviceUnavailable(f"--device {name} asked for, but torch sees no CUDA GPU here "
                                "(torch.cuda.is_available() is False); use --device cpu or auto")
    return name


def as_tuple(inputs: Any) -> tuple:
    """A model input given as one tensor or a tuple of positional arguments -> a tuple."""
    return tuple(inputs) if isinstance(inputs, (tuple, list)) else (inputs,)


def to_json(value: Any) -> str:
    """Compact, key-sorted JSON so a dict/list field stays one flat string column in a record."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


@contextlib.contextmanager
def mha_fastpath_disabled() -> Iterator[None]:
    """Make ``nn.MultiheadAttention``/``TransformerEncoderLayer`` take their decomposed path.

    In eval + no-grad they otherwise dispatch to fused kernels (``aten::_native_multi_head_attention``,
    ``aten::_transformer_encoder_layer_fwd``) that neither FLOP counter knows: they would count 0. The math
    is the same, so counting the decomposed path (linear + SDPA + elementwise) is the honest count.
    """
    mha = getattr(torch.backends, "mha", None)
    if mha is None:
        yield
        return
    before = mha.get_fastpath_enabled()
    mha.set_fastpath_enabled(False)
    try:
        yield
    finally:
        mha.set_fastpath_enabled(before)
