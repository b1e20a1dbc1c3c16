"""Frozen run configuration: what to train, how, and at which clip sizes to measure cost.

Profiles (``smoke`` / ``quick`` / ``full``) are named sets of defaults; a user's flag overrides one field.
"""
from __future__ import annotations

import hashlib
import json
import types
import typing
from dataclasses import MISSING, asdict, dataclass, field, fields, is_dataclass, replace
from typing import Any

from fusion_models.clip import ClipSpec

from . import measurements as _measurements


@dataclass(frozen=True)
class TrainSpec:
    """One training recipe shared by every model (the fairness contract of the ablation).

    Default protocol: train until the accuracy on a *stopping split* (``stop_fraction`` of the training
    clips, never the reported split) stops improving for ``patience`` evaluations, or reaches
    ``ceiling_fraction`` of the family ceiling, or the step budget runs out (docs/accuracy.md).
    ``epochs`` set: the fixed-length protocol instead (exactly that many epochs, no early stop; the curve
    is still recorded), which is what a short-budget snapshot is.
    """

    epochs: int | None = None   # None: train to a plateau; N: exactly N epochs (fixed length, no early stop)
    batch_size: int = 32
    lr: float = 2e-3            # AdamW
    weight_decay: float = 1e-4
    schedule: str = "cosine"    # per-step cosine decay to 0 over the *budget*: a curve does not depend on when it stops
    grad_clip: float = 5.0      # guards the recurrent models' early steps; applied to every model alike
    num_workers: int = 0        # synthetic clips are generated in-process; workers only add IPC on 2 cores
    budget_steps: int = 1000    # cap on optimizer steps (the quick profile sets 1500: 10 epochs of its 2400 fitting clips)
    eval_every: int = 75        # steps between stopping-split evaluations (half a quick-profile epoch at batch 16)
    patience: int = 4           # evaluations without a new best stopping accuracy before stopping
    min_delta: float = 0.02     # patience restarts only on a gain of more than this (fraction): 12 of 600 stopping clips
    stop_fraction: float = 0.2  # share of the training clips held out as the stopping split
    ceiling_stop: bool = True   # stop once the stopping accuracy reaches ceiling_fraction x the family ceiling
    ceiling_fraction: float = 0.99
    fused_adamw: bool = False   # AdamW(fused=True): faster, not bit-identical to the default (docs/accuracy.md)
    channels_last: bool = False  # train in channels_last memory format: faster on some models, not bit-identical
    # torch.compile the training forward + backward with this dynamo backend ("inductor"); None: eager. Not exact
    # (inductor fuses ops), and its compile time counts in train_time_s: it pays back only where the compile is
    # cheap (a warm inductor cache) -- docs/speed.md. Evaluation stays eager.
    compile_backend: str | None = None
    flow_cache_mib: float = 256.0  # per-run training flow cache (bench/flow_cache.py); exact, so on; 0 = off
    flow_cache_dir: str | None = None  # also keep it on disk there (a later run of the same clips starts warm)

    def __post_init__(self) -> None:
        if self.epochs is not None and self.epochs < 0:
            raise ValueError(f"epochs must be >= 0, got {self.epochs}")
        if self.batch_size < 1:
            raise ValueError(f"batch size must be >= 1, got {self.batch_size}")
        if not self.lr > 0:
            raise ValueError(f"lr must be > 0, got {self.lr}")
        if self.budget_steps < 1:
            raise ValueError(f"--budget must be a step count >= 1, got {self.budget_steps}")
        if self.eval_every < 1:
            raise ValueError(f"--eval-every must be a step count >= 1, got {self.eval_every}")
        if self.patience < 1:
            raise ValueError(f"--patience must be an evaluation count >= 1, got {self.patience}")
        if not 0.0 <= self.min_delta < 1.0:
            raise ValueError(f"--min-delta must lie in [0, 1) (a fraction of accuracy), got {self.min_delta}")
        if not 0.0 < self.stop_fraction < 1.0:
            raise ValueError(f"--stop-fraction must lie strictly between 0 and 1, got {self.stop_fraction}")
        if not self.flow_cache_mib >= 0:
            raise ValueError(f"flow cache size must be >= 0 MiB, got {self.flow_cache_mib}")
        if self.compile_backend is not None:
            from torch._dynamo import list_backends

            if self.compile_backend not in list_backends(exclude_tags=()):
                raise ValueError(f"compile_backend {self.compile_backend!r} is not a torch.compile backend "
                                 f"(this torch has {', '.join(list_backends())})")
        if not 0.0 < self.ceiling_fraction <= 1.0:
            raise ValueError(f"ceiling_fraction must lie in (0, 1], got {self.ceiling_fraction}")

    @property
    def fixed_length(self) -> bool:
        """True for the fixed-epochs protocol (no early stop)."""
        return self.epochs is not None


@dataclass(frozen=True)
class CostSpec:
    """Where FLOPs / params / latency / memory are measured (the *deployment* clip).

    At the 32x32 training clip every model is dominated by framework overhead; the deployment clip
    (16 frames at 112x112 on resnet18, the common video-benchmark input) is where costs separate.
    """

    clip: ClipSpec = ClipSpec(frames=16, height=112, width=112)
    backbone: str = "resnet18"
    latency_batches: tuple[int, ...] = (1,)        # batch 1 = latency; larger = throughput
    enabled: bool = True


@dataclass(frozen=True)
class MeasureSpec:
    """How hard to measure latency (budget per model and batch)."""

    latency_batches: tuple[int, ...] = (1, 32)     # at the training clip
    min_samples: int = 20
    max_time_s: float = 2.0
    warmup_s: float = 0.3
    memory_train_step: bool = True
    amp: str | None = None          # latency under autocast: None | "fp16" | "bf16"
    channels_last: bool = False     # latency with channels_last memory format
    compile: bool = False           # latency of torch.compile(model) (compile time excluded by the warm-up)

    def __post_init__(self) -> None:
        if self.amp not in (None, "fp16", "bf16"):
            raise ValueError(f"amp must be none, fp16 or bf16, got {self.amp!r}")


@dataclass(frozen=True)
class RunSpec:
    """Everything one run does; hashed into the records so resumes and reports can group points."""

    models: tuple[str, ...]
    dataset: Any                                   # bench.data.DatasetSpec
    clip: ClipSpec = ClipSpec()
    backbone: str = "small_cnn"
    width: int = 16
    pretrained: bool = False                       # the backbone library's weights, from the local cache only
    weights: str | None = None                     # a local state-dict file for the backbone (bench/weights.py)
    save_weights: str | None = None                # write each trained model's encoder here (a pre-training)
    train: TrainSpec = TrainSpec()
    cost: CostSpec = CostSpec()
    measure: MeasureSpec = MeasureSpec()
    measurements: tuple[str, ...] = field(default_factory=_measurements.names)  # every registered one
    seeds: tuple[int, ...] = (0,)
    device: str = "cpu"
    threads: int | None = None
    profile: str = "quick"
    point: tuple[tuple[str, Any], ...] = ()        # ablation knobs of this grid point, e.g. (("frames", 4),)

    def __post_init__(self) -> None:
        known = _measurements.names()
        bad = [m for m in self.measurements if m not in known]
        if bad:
            raise ValueError(f"unknown measurement(s) {', '.join(bad)}; choose from {', '.join(known)}")
        if not self.seeds:
            raise ValueError("at least one seed is needed")
        if not self.models:
            raise ValueError("no models selected")

    def to_dict(self) -> dict[str, Any]:
        """A JSON-safe nested dict of the whole spec."""
        return _jsonable(asdict(self))

    def config_hash(self) -> str:
        """Hash of everything that changes a result except models and seeds (groups ablation points)."""
        d = self.to_dict()
        for k in ("models", "seeds", "measurements", "profile"):
            d.pop(k, None)
        # Fields added after runs were recorded stay out of the hash at their default, so those runs keep their
        # point ids (a resume finds its records; tests/bench/test_config_hash.py checks the committed runs).
        for (section, name), default in HASH_OMITTED_AT_DEFAULT.items():
            if d[section].get(name, default) == default:
                d[section].pop(name, None)
        return hashlib.sha1(json.dumps(d, sort_keys=True).encode()).hexdigest()[:10]


# (spec section, field) -> default: options added after the committed example runs (see RunSpec.config_hash)
HASH_OMITTED_AT_DEFAULT: dict[tuple[str, str], Any] = {("train", "compile_backend"): None}


def _jsonable(x: Any) -> Any:
    if isinstance(x, dict):
        return {k: _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    if isinstance(x, (str, int, float, bool)) or x is None:
        return x
    return str(x)


@dataclass(frozen=True)
class Profile:
    """Named defaults: dataset sizes, recipe, measurement budget."""

    name: str
    train_size: int
    val_size: int
    train: TrainSpec
    measure: MeasureSpec
    cost: CostSpec
    clip: ClipSpec = ClipSpec()


PROFILES: dict[str, Profile] = {
    # Seconds per model: for tests and for checking that a pipeline works end to end.
    "smoke": Profile(
        name="smoke",
        train_size=120,
        val_size=64,
        clip=ClipSpec(frames=4, height=32, width=32),
        # 96 training + 24 stopping clips: 3 steps, one stopping evaluation, stops by budget.
        train=TrainSpec(batch_size=32, budget_steps=3, eval_every=3, patience=1),
        measure=MeasureSpec(latency_batches=(1,), min_samples=5, max_time_s=0.2, warmup_s=0.05, memory_train_step=False),
        cost=CostSpec(clip=ClipSpec(frames=4, height=32, width=32), backbone="small_cnn", latency_batches=(1,)),
    ),
    # The default: every model in a few minutes on a 2-core CPU.
    "quick": Profile(
        name="quick",
        # 2400 training + 600 stopping clips (150 steps of 16 an epoch; a stopping evaluation every 75 steps);
        # 2500 validation clips keep a single-seed binomial 95 % interval within +-2 points at 50 % (Wilson
        # half-width 1.96 points). Batch 16: the same clips/s as 32 on 2 cores, and every model reached its
        # plateau or ceiling on fewer clips, so the run took 27 % less training (docs/accuracy.md). Budget 1500
        # steps (10 epochs): over seeds 0-2 the ceiling stops came by step 900 (early_fusion) and the longest
        # plateau stop at 1425 (pool_attn, seed 1); none was capped.
        train_size=3000,
        val_size=2500,
        train=TrainSpec(batch_size=16, budget_steps=1500),
        measure=MeasureSpec(latency_batches=(1, 32), min_samples=20, max_time_s=0.6, warmup_s=0.2),
        cost=CostSpec(),
    ),
    # Paper numbers: more data, epochs and seeds, longer latency sampling.
    "full": Profile(
        name="full",
        train_size=10000,
        val_size=4000,
        train=TrainSpec(batch_size=32, budget_steps=5000, eval_every=250, patience=5),
        measure=MeasureSpec(latency_batches=(1, 8, 32), min_samples=50, max_time_s=5.0, warmup_s=1.0),
        cost=CostSpec(latency_batches=(1, 8)),
    ),
}


def get_profile(name: str) -> Profile:
    """The profile called ``name``; unknown names raise ``ValueError`` listing the choices."""
    if name not in PROFILES:
        raise ValueError(f"unknown profile {name!r}; choose from {', '.join(PROFILES)}")
    return PROFILES[name]


def parse_size(text: str) -> tuple[int, int]:
    """``"112"`` or ``"112x96"`` (H x W) -> ``(H, W)``; anything else raises ``ValueError``."""
    parts = text.lower().replace("×", "x").split("x")
    try:
        nums = [int(p) for p in parts]
    except ValueError:
        raise ValueError(f"size must look like 112 or 112x112 (HxW), got {text!r}") from None
    if len(nums) == 1:
        nums = nums * 2
    if len(nums) != 2 or min(nums) < 1:
        raise ValueError(f"size must look like 112 or 112x112 (HxW) with positive numbers, got {text!r}")
    return nums[0], nums[1]


def parse_int_list(text: str, *, what: str, minimum: int = 0) -> tuple[int, ...]:
    """``"0,1,2"`` -> ``(0, 1, 2)``; empty or malformed raises ``ValueError``."""
    items = [t.strip() for t in text.split(",") if t.strip()]
    if not items:
        raise ValueError(f"{what} must be a comma-separated list of integers, got {text!r}")
    try:
        vals = tuple(int(t) for t in items)
    except ValueError:
        raise ValueError(f"{what} must be a comma-separated list of integers, got {text!r}") from None
    if min(vals) < minimum:
        raise ValueError(f"{what} must be >= {minimum}, got {text!r}")
    return vals


__all__ = [
    "ClipSpec", "TrainSpec", "CostSpec", "MeasureSpec", "RunSpec", "Profile", "PROFILES",
    "get_profile", "parse_size", "parse_int_list", "run_spec_from_dict", "replace",
]


def run_spec_from_dict(d: dict[str, Any]) -> RunSpec:
    """Rebuild a ``RunSpec`` from ``RunSpec.to_dict()`` output (run.json), e.g. to resume a run.

    Derived from the dataclasses' own type hints (no hand-written inverse): a field added to any spec is
    restored without touching this function; a field absent from an older run.json takes its default."""
    from .data import DatasetSpec

    return _from_dict(RunSpec, d, {"dataset": DatasetSpec})


def _from_dict(cls: type, d: dict[str, Any], override: dict[str, type] | None = None) -> Any:
    hints = typing.get_type_hints(cls)
    kwargs = {}
    if not isinstance(d, dict):
        raise ValueError(f"{cls.__name__}: expected an object, got {type(d).__name__}")
    for f in fields(cls):
        if f.name in d:
            kwargs[f.name] = _decode((override or {}).get(f.name, hints[f.name]), d[f.name])
        elif f.default is MISSING and f.default_factory is MISSING:
            raise ValueError(f"{cls.__name__}: required field {f.name!r} is missing")
    return cls(**kwargs)


def _decode(tp: Any, value: Any) -> Any:
    """A JSON value (lists for tuples, dicts for dataclasses) back to the annotated type ``tp``."""
    if value is None:
        return None
    if is_dataclass(tp):
        return _from_dict(tp, value)
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        return _decode(next(a for a in args if a is not type(None)), value)
    if origin is tuple:
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_decode(args[0], v) for v in value)
        return tuple(_decode(a, v) for a, v in zip(args, value)) if args else tuple(value)
    return value
