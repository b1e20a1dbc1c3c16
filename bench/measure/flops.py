"""FLOP counting with two independent counters and a stated unit.

    model, inputs --fvcore JIT trace + our handles-------> gmacs          (1 multiply-add = 1)
                  --torch FlopCounterMode + our formulas-> gflops_torch   (1 multiply-add = 2)

Both counters count matmul-like work only (conv, linear/addmm/mm/bmm/matmul/einsum, attention's two
batched matmuls, recurrent gate matmuls); elementwise ops, norms, pools and softmax count 0 (see
``flop_handlers``). So on any model ``gflops_torch == 2 * gmacs`` unless an op is listed in
``unexplained_ops``. A counter that fails leaves its field ``None`` and says why in ``*_error``.
"""
from __future__ import annotations

import contextlib
import logging
import warnings
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Iterator

import torch
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils.flop_counter import FlopCounterMode

from ._common import MeasureOOM, as_tuple, is_oom, mha_fastpath_disabled, to_json
from .flop_handlers import FVCORE_HANDLES, FVCORE_IGNORED, is_data_movement, is_policy_zero, torch_custom_mapping

FLOPS_POLICY = "matmul-macs-v1"  # what counts: matmul-like MACs only; bump when the policy changes


@dataclass(frozen=True)
class FlopsResult:
    """Cost of one forward pass on the given inputs.

    ``gmacs``: fvcore count in 1e9 multiply-adds (primary). ``gflops_torch``: torch's count in 1e9 FLOPs
    (= 2 x MACs). ``by_module_gmacs``: per top-level child (from fvcore, torch's if fvcore failed).
    ``unsupported_*``: op -> number of calls the counter skipped (data movement left out).
    ``unexplained_ops``: skipped ops that are *not* zero by our policy -- a real gap in the count.
    """

    gmacs: float | None
    gflops_torch: float | None
    by_module_gmacs: dict[str, float] = field(default_factory=dict)
    by_operator_gmacs: dict[str, float] = field(default_factory=dict)
    unsupported_fvcore: dict[str, int] = field(default_factory=dict)
    unsupported_torch: dict[str, int] = field(default_factory=dict)
    unexplained_ops: tuple[str, ...] = ()
    fvcore_error: str | None = None
    torch_error: str | None = None
    policy: str = FLOPS_POLICY

    @property
    def torch_to_fvcore_ratio(self) -> float | None:
        """``gflops_torch / (2 * gmacs)``: 1.0 when the counters agree under the 2x convention."""
        if self.gmacs is None or self.gflops_torch is None or self.gmacs == 0:
            return None
        return self.gflops_torch / (2.0 * self.gmacs)

    def counters_agree(self, rel_tol: float = 1e-6) -> bool:
        """Both counters ran and ``gflops_torch == 2 * gmacs`` within ``rel_tol``."""
        if self.gmacs is None or self.gflops_torch is None:
            return False
        return abs(self.gflops_torch - 2.0 * self.gmacs) <= rel_tol * max(self.gflops_torch, 2.0 * self.gmacs, 1e-30)

    def as_dict(self) -> dict[str, Any]:
        """Flat record fields; dicts are compact JSON strings so the record schema stays fixed."""
        return {
            "gmacs": self.gmacs,
            "gflops_torch": self.gflops_torch,
            "flops_by_module_gmacs": to_json(self.by_module_gmacs),
            "flops_by_operator_gmacs": to_json(self.by_operator_gmacs),
            "flops_unsupported_ops": to_json({"fvcore": self.unsupported_fvcore, "torch": self.unsupported_torch}),
            "flops_unexplained_ops": ",".join(self.unexplained_ops),
            "flops_counter_fvcore_error": self.fvcore_error,
            "flops_counter_torch_error": self.torch_error,
            "flops_policy": self.policy,
        }


def count_flops(model: nn.Module, inputs: torch.Tensor | tuple) -> FlopsResult:
    """Count one forward of ``model(*inputs)`` with fvcore and torch (eval mode, no grad).

    ``inputs``: a tensor (e.g. a clip ``[B, T, C, H, W]``) or a tuple of positional arguments. The counts
    are for the whole batch; divide by ``B`` for per-clip cost. The model's train/eval mode is restored.
    A counter that fails is recorded in ``*_error``; only when both run out of memory is ``MeasureOOM`` raised.
    """
    args = as_tuple(inputs)
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad(), mha_fastpath_disabled():
            fv = _count_fvcore(model, args)
            th = _count_torch(model, args)
    finally:
        model.train(was_training)
    if fv["oom"] and th["oom"]:
        raise MeasureOOM(f"out of memory while counting FLOPs: {th['error']}")

    unexplained = sorted({op for op in [*fv["unsupported"], *th["unsupported"]] if not is_policy_zero(op)})
    by_module = fv["by_module"] if fv["error"] is None else th["by_module"]
    return FlopsResult(
        gmacs=fv["total"],
        gflops_torch=th["total"],
        by_module_gmacs=by_module,
        by_operator_gmacs=fv["by_operator"],
        unsupported_fvcore=fv["unsupported"],
        unsupported_torch=th["unsupported"],
        unexplained_ops=tuple(unexplained),
        fvcore_error=fv["error"],
        torch_error=th["error"],
    )


def _error_text(exc: BaseException) -> str:
    first = (str(exc).strip().splitlines() or [""])[0]
    return f"{type(exc).__name__}: {first}"[:500]


@contextlib.contextmanager
def _quiet_fvcore() -> Iterator[None]:
    """fvcore logs skipped ops and the JIT tracer warns; the harness never prints, so mute both here."""
    logger = logging.getLogger("fvcore")
    level = logger.level
    logger.setLevel(logging.CRITICAL + 1)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        logger.setLevel(level)


def _zero_macs(inputs: list, outputs: list) -> int:
    """fvcore handle for ops that count 0 by policy (norms, pools, resampling)."""
    return 0


def _count_fvcore(model: nn.Module, args: tuple) -> dict[str, Any]:
    out: dict[str, Any] = {"total": None, "by_module": {}, "by_operator": {}, "unsupported": {}, "error": None, "oom": False}
    try:
        with _quiet_fvcore():
            from fvcore.nn import FlopCountAnalysis  # its import warns (torch.jit.script deprecation)

            fca = FlopCountAnalysis(model, args)
            fca.set_op_handle(**FVCORE_HANDLES)
            # A ``None`` handle does not override a default handle in fvcore 0.1.5; a zero handle does.
            fca.set_op_handle(**{name: _zero_macs for name in FVCORE_IGNORED})
            fca.unsupported_ops_warnings(False)
            fca.uncalled_modules_warnings(False)
            fca.tracer_warnings("none")
            total = fca.total()
            by_module = fca.by_module()
            out["by_operator"] = {k: v / 1e9 for k, v in sorted(fca.by_operator().items())}
            out["unsupported"] = {k: int(v) for k, v in sorted(fca.unsupported_ops().items()) if not is_data_movement(k)}
        out["total"] = total / 1e9
        out["by_module"] = {name: by_module.get(name, 0) / 1e9 for name, _ in model.named_children()}
    except Exception as exc:  # tracing fails on data-dependent control flow, unsupported inputs, ...
        out["error"], out["oom"] = _error_text(exc), is_oom(exc)
    return out


class _LeafOpLog(TorchDispatchMode):
    """Entered *outside* ``FlopCounterMode``, it sees every op that actually executes (after the
    counter's own decompositions), so it can say which executed ops had no formula."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: Counter[Any] = Counter()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.calls[func._overloadpacket] += 1
        return func(*args, **(kwargs or {}))


def _count_torch(model: nn.Module, args: tuple) -> dict[str, Any]:
    out: dict[str, Any] = {"total": None, "by_module": {}, "unsupported": {}, "error": None, "oom": False}
    try:
        log = _LeafOpLog()
        counter = FlopCounterMode(display=False, custom_mapping=torch_custom_mapping())
        with log, counter:
            model(*args)
        counts = counter.get_flop_counts()
        out["total"] = counter.get_total_flops() / 1e9
        root = type(model).__name__
        out["by_module"] = {
            name: sum(counts.get(f"{root}.{name}", {}).values()) / 2e9 for name, _ in model.named_children()
        }
        skipped: Counter[str] = Counter()
        for packet, n in log.calls.items():
            if packet not in counter.flop_registry:
                name = f"aten::{packet._qualified_op_name.split('::', 1)[-1]}" if hasattr(packet, "_qualified_op_name") else str(packet)
                if not is_data_movement(name):
                    skipped[name] += n
        out["unsupported"] = dict(sorted(skipped.items()))
    except Exception as exc:
        out["error"], out["oom"] = _error_text(exc), is_oom(exc)
    return out


def count_train_step_gmacs(model: nn.Module, clips: torch.Tensor, labels: torch.Tensor) -> dict[str, float | None]:
    """Counted MACs of one training step (forward + backward of the cross-entropy) on ``clips [B, T, C, H, W]``.

    Counted by torch's ``FlopCounterMode`` on a deep copy in train mode (BatchNorm statistics, gradients and
    the caller's RNG state are left as they were), so the backward is what autograd runs -- e.g. no input
    gradient for the first layer -- not an assumed 2x forward. Returns ``train_step_gmacs`` (whole batch),
    ``train_forward_gmacs`` and ``train_backward_gmacs``; ``None`` values and ``error`` when counting fails.
    """
    import copy

    rng = torch.get_rng_state()
    try:
        net = copy.deepcopy(model).train()
        fwd = FlopCounterMode(display=False, custom_mapping=torch_custom_mapping())
        with mha_fastpath_disabled():
            with fwd:
                loss = nn.functional.cross_entropy(net(clips), labels)
            bwd = FlopCounterMode(display=False, custom_mapping=torch_custom_mapping())
            with bwd:
                loss.backward()
        f, b = fwd.get_total_flops() / 2e9, bwd.get_total_flops() / 2e9
        return {"train_step_gmacs": f + b, "train_forward_gmacs": f, "train_backward_gmacs": b, "error": None}
    except Exception as exc:  # noqa: BLE001 - a failed count leaves the curve's compute empty, never the run
        return {"train_step_gmacs": None, "train_forward_gmacs": None, "train_backward_gmacs": None,
                "error": _error_text(exc)}
    finally:
        torch.set_rng_state(rng)
