"""Peak memory of one forward (inference) or one training step, in MiB (2^20 bytes).

    CPU : peak of live tensor bytes, tracked exactly per storage by a TorchDispatchMode
          (every op output's storage is added once when it appears and removed when it is freed);
          the baseline -- parameters, buffers, existing grads and the inputs -- is live from the start.
    CUDA: torch.cuda.reset_peak_memory_stats, then max_memory_allocated / max_memory_reserved.

Both report the absolute peak (weights + inputs + activations + temporaries), ``baseline_mib`` is what was
live before the call, so ``peak_mem_mib - baseline_mib`` is the call's own working set. Process RSS is
never used: it counts freed pages the allocator keeps, shared libraries and other tensors in the process.
On CPU, scratch buffers a kernel allocates and frees internally (e.g. oneDNN reorders, im2col) never
surface as tensors and are not included: the default CPU number is a live-*tensor* peak.
``cpu_method="allocator"`` instead replays the CPU allocator's own alloc/free events recorded by
``torch.profiler`` (``profile_memory=True``): scratch included, like CUDA's ``max_memory_allocated``,
at ~0.5 s of profiler start-up (and Kineto may log to stderr from C++).
"""
from __future__ import annotations

import weakref
from dataclasses import dataclass
from typing import Any, Callable

import torch
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves

from ._common import MIB, as_tuple, oom_guard, resolve_device
from .latency import batch_of


@dataclass(frozen=True)
class MemoryResult:
    """Peak memory of one measured call (MiB)."""

    peak_mem_mib: float  # absolute peak: baseline + the call's working set at its worst moment
    baseline_mib: float  # live before the call: params, buffers, grads, inputs (CUDA: all allocated)
    reserved_mib: float | None  # CUDA caching allocator's peak reservation; None on CPU
    method: str  # "cpu_dispatch_live_tensors" | "cpu_allocator_profiler" | "cuda_max_memory_allocated"
    train_step: bool  # False: one inference forward; True: forward + backward + SGD step
    batch_size: int
    device: str

    def as_dict(self) -> dict[str, Any]:
        """Flat record fields (one memory record per call; the runner prefixes a training step's)."""
        return {
            "peak_mem_mib": self.peak_mem_mib,
            "baseline_mib": self.baseline_mib,
            "reserved_mib": self.reserved_mib,
            "mem_method": self.method,
            "mem_train_step": self.train_step,
            "mem_batch_size": self.batch_size,
            "mem_device": self.device,
        }


class LiveTensorBytes(TorchDispatchMode):
    """Tracks live bytes of the storages behind every tensor an op returns while the mode is active.

    A storage is counted once (views and in-place results share it) and released by a weakref
    finalizer when its last reference dies, so ``peak_bytes`` is the exact high-water mark of live
    tensor storage on ``device_type``. ``track`` adds tensors that already exist (the baseline).
    """

    def __init__(self, device_type: str = "cpu") -> None:
        super().__init__()
        self.device_type = device_type
        self.live: dict[int, int] = {}
        self.current_bytes = 0
        self.peak_bytes = 0
        self._finalizers: list[weakref.finalize] = []

    def track(self, t: Any) -> None:
        """Count ``t``'s storage as live (no-op for non-tensors, other devices or known storages)."""
        if not isinstance(t, torch.Tensor) or t.device.type != self.device_type or t.is_meta:
            return
        try:
            st = t.untyped_storage()
        except (RuntimeError, NotImplementedError):  # sparse / tensor subclasses without storage
            return
        key = st._cdata
        if key in self.live:
            return
        nbytes = st.nbytes()
        self.live[key] = nbytes
        self.current_bytes += nbytes
        self.peak_bytes = max(self.peak_bytes, self.current_bytes)
        self._finalizers.append(weakref.finalize(st, self._release, key))

    def _release(self, key: int) -> None:
        self.current_bytes -= self.live.pop(key, 0)

    def close(self) -> None:
        """Stop tracking: detach the finalizers still pending on storages that outlive the measurement
        (parameters, inputs), so repeated measurements do not pile them up."""
        for fin in self._finalizers:
            fin.detach()
        self._finalizers.clear()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for t in tree_leaves(out):
            self.track(t)
        return out


def default_loss(out: Any) -> torch.Tensor:
    """Cross-entropy against class 0 for logits ``[B, K]``; the sum of the first output otherwise."""
    t = next(x for x in tree_leaves(out) if isinstance(x, torch.Tensor))
    if t.dim() == 2 and t.is_floating_point():
        return nn.functional.cross_entropy(t, torch.zeros(t.shape[0], dtype=torch.long, device=t.device))
    return t.float().sum()


def measure_memory(
    model: nn.Module,
    clip: torch.Tensor | tuple,
    *,
    device: str | torch.device = "cpu",
    train_step: bool = False,
    batch_size: int | None = None,
    loss_fn: Callable[[Any], torch.Tensor] = default_loss,
    lr: float = 1e-3,
    cpu_method: str = "tensors",
) -> MemoryResult:
    """Peak memory of ``model(clip)`` under inference mode, or of one training step.

    ``clip``: ``[B, T, C, H, W]`` (or any input / tuple); ``batch_size`` replaces B by repeating ``clip[0]``.
    ``train_step=True``: train mode, forward, ``loss_fn(out).backward()``, one ``SGD(momentum=0.9)`` step
    from a fresh optimizer (its momentum buffers count); weights, grads and mode are restored after.
    ``cpu_method``: ``"tensors"`` (live tensor storages, default) or ``"allocator"`` (CPU allocator events,
    kernel scratch included). The model is moved to ``device`` (in place); its train/eval mode is restored.
    Raises ``MeasureOOM`` when it does not fit.
    """
    if cpu_method not in ("tensors", "allocator"):
        raise ValueError(f"cpu_method must be 'tensors' or 'allocator', got {cpu_method!r}")
    dev = torch.device(resolve_device(device))
    args = as_tuple(clip)
    args = (batch_of(args[0], batch_size), *args[1:])
    was_training = model.training
    with oom_guard(f"memory ({'train step' if train_step else 'inference'}) at batch_size={batch_size}"):
        model.to(dev)
        args = tuple(a.to(dev) if isinstance(a, torch.Tensor) else a for a in args)
        batch = int(args[0].shape[0])
        # One untimed, untracked forward: lazy modules and backend workspaces settle first.
        model.eval()
        with torch.inference_mode():
            model(*args)
        saved = {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()} if train_step else None
        try:
            if dev.type == "cuda":
                peak, base, reserved = _cuda_peak(model, args, dev, train_step, loss_fn, lr)
                method = "cuda_max_memory_allocated"
            elif cpu_method == "allocator":
                peak, base = _cpu_peak_allocator(model, args, train_step, loss_fn, lr)
                reserved, method = None, "cpu_allocator_profiler"
            else:
                peak, base = _cpu_peak(model, args, train_step, loss_fn, lr)
                reserved, method = None, "cpu_dispatch_live_tensors"
        finally:
            if saved is not None:
                with torch.no_grad():
                    for k, v in model.state_dict().items():
                        v.copy_(saved[k])
                for p in model.parameters():
                    p.grad = None
            model.train(was_training)
    return MemoryResult(
        peak_mem_mib=peak / MIB,
        baseline_mib=base / MIB,
        reserved_mib=None if reserved is None else reserved / MIB,
        method=method,
        train_step=train_step,
        batch_size=batch,
        device=str(dev),
    )


def _step(model: nn.Module, args: tuple, train_step: bool, loss_fn, lr: float) -> None:
    if not train_step:
        model.eval()
        with torch.inference_mode():
            out = model(*args)
        del out
        return
    model.train()
    for p in model.parameters():
        p.grad = None
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.SGD(params, lr=lr, momentum=0.9) if params else None
    loss = loss_fn(model(*args))
    if loss.requires_grad:  # a parameter-free module has nothing to differentiate
        loss.backward()
    if opt is not None:
        opt.step()
    del loss, opt


def _cpu_baseline(model, args, train_step) -> LiveTensorBytes:
    """A tracker holding what is live before the call: params, buffers, inputs (and grads, inference only:
    a training step drops them first)."""
    tracker = LiveTensorBytes("cpu")
    for t in (*model.parameters(), *model.buffers(), *args):
        tracker.track(t)
    for p in model.parameters():
        if p.grad is not None and not train_step:
            tracker.track(p.grad)
    return tracker


def _cpu_peak(model, args, train_step, loss_fn, lr) -> tuple[int, int]:
    tracker = _cpu_baseline(model, args, train_step)
    base = tracker.current_bytes
    try:
        with tracker:
            _step(model, args, train_step, loss_fn, lr)
    finally:
        tracker.close()
    return tracker.peak_bytes, base


def _cpu_peak_allocator(model, args, train_step, loss_fn, lr) -> tuple[int, int]:
    """Replay the CPU allocator's (+size on alloc, -size on free) events in time order; the running
    maximum is the call's peak. Frees of memory allocated before the profile started make the running
    sum dip below 0 but cannot raise the maximum, so the peak stays exact."""
    from torch.profiler import ProfilerActivity, profile

    baseline = _cpu_baseline(model, args, train_step)
    base = baseline.current_bytes
    baseline.close()
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        _step(model, args, train_step, loss_fn, lr)
    cpu = torch._C._autograd.DeviceType.CPU
    events = [e for e in prof.profiler.kineto_results.events() if e.name() == "[memory]" and e.device_type() == cpu]
    events.sort(key=lambda e: e.start_ns())
    current = peak = 0
    for e in events:
        current += e.nbytes()
        peak = max(peak, current)
    return base + peak, base


def _cuda_peak(model, args, dev, train_step, loss_fn, lr) -> tuple[int, int, int]:
    torch.cuda.synchronize(dev)
    torch.cuda.empty_cache()  # so the reserved peak is this call's, not an earlier call's leftovers
    torch.cuda.reset_peak_memory_stats(dev)  # max_memory_allocated is cumulative otherwise
    base = torch.cuda.memory_allocated(dev)
    _step(model, args, train_step, loss_fn, lr)
    torch.cuda.synchronize(dev)
    return torch.cuda.max_memory_allocated(dev), base, torch.cuda.max_memory_reserved(dev)
