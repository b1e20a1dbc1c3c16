"""Shared pieces of the measurement engine: the OOM error, device checks, JSON-flat values."""
from __future__ import annotations

import contextlib
import json
from typing import Any, Callable, Iterator

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



def to_channels_last(model: torch.nn.Module) -> Callable[[], None]:
    """Convert ``model`` in place: 4-D weights and buffers to channels_last, 5-D ones to channels_last_3d.

    (``model.to(memory_format=torch.channels_last)`` raises on the 5-D weights of the 3-D conv models.)
    Returns a function that gives every converted tensor its previous layout back (values kept, so it also
    works after training steps).
    """
    formats = {4: torch.channels_last, 5: torch.channels_last_3d}
    converted = []
    with torch.no_grad():
        for mod in model.modules():
            for kind in ("_parameters", "_buffers"):
                for name, t in getattr(mod, kind).items():
                    fmt = formats.get(t.dim()) if t is not None else None
                    if fmt is None or t.is_contiguous(memory_format=fmt) and not t.is_contiguous():
                        continue
                    _set(mod, kind, name, t.contiguous(memory_format=fmt))
                    converted.append((mod, kind, name))

    def restore() -> None:
        with torch.no_grad():
            for mod, kind, name in converted:
                _set(mod, kind, name, getattr(mod, kind)[name].contiguous())

    return restore


def _set(mod: torch.nn.Module, kind: str, name: str, value: torch.Tensor) -> None:
    if kind == "_parameters":
        mod._parameters[name].data = value  # keeps the Parameter object (optimizers hold it)
    else:
        mod._buffers[name] = value


@contextlib.contextmanager
def channels_last_for(model: torch.nn.Module, enabled: bool) -> Iterator[None]:
    """``model`` in channels_last (``to_channels_last``) inside the block; the previous layouts after.

    ``nn.Module.to(memory_format=...)`` converts in place, so without the restore a latency measurement with
    ``channels_last`` would leak its layout into the next measurement of the same model (memory, FLOPs).
    """
    restore = to_channels_last(model) if enabled else None
    try:
        yield
    finally:
        if restore is not None:
            restore()
