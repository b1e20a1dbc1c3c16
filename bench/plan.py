"""From user options to run points: profile defaults + overrides -> ``RunSpec``; ablation grids.

Each ablation knob maps a value onto a base ``RunSpec``; every grid point is an ordinary run point,
so reports and resumes treat sweeps and single runs alike.
"""
from __future__ import annotations

import dataclasses
import itertools
import os
from dataclasses import dataclass, replace
from typing import Any, Callable, Sequence

from fusion_models import list_models
from fusion_models.backbone import check_backbone_name

from . import measurements as _measurements
from .config import RunSpec, get_profile, parse_int_list, parse_size
from .data import DatasetSpec
from .measure import resolve_device
from .results import record_key
from .validate import check_options, check_run_spec


COST_OFF = ("off", "none", "0")  # --cost-clip / cost_clip values that switch the deployment-clip costs off
BACKBONE_HELP = "small_cnn | resnet18 | mobilenet_v3_small | timm:NAME | tv:NAME (docs/add_your_own.md)"


def _opt(default: Any, help: str, **cli: Any) -> Any:
    """A ``RunOptions`` field: its default and its ``--help`` text, from which ``bench run`` and ``bench ablate``
    declare their options (bench/cli.py ``with_run_options``). ``cli`` may give ``flags`` (the option's
    spellings), ``text`` (the command line's default, as typed) and ``parse`` (text -> the field's value)."""
    return dataclasses.field(default=default, metadata={"help": help, **cli})


def _seeds(text: Any) -> tuple[int, ...]:
    return parse_int_list(text, what="--seeds") if isinstance(text, str) else tuple(text)


@dataclass(frozen=True)
class RunOptions:
    """What a user may set on ``bench run`` / ``bench ablate`` (each option declared here once); ``None`` means
    "the profile's default"."""

    models: str = _opt("all", "all | NAME,NAME | GLOB", flags=("--models", "-m"))
    dataset: str = _opt("synthetic", "synthetic | synthetic-order | folder | ucf101 | hmdb51")
    root: str | None = _opt(None, "dataset root for real videos (folder, CSV manifest, UCF/HMDB root)")
    frames: int | None = _opt(None, "frames T of the training clip (the T of --clip)")
    size: str | None = _opt(None, "training clip size HxW, e.g. 32x32 (shorthand for the HxW of --clip)")
    batch_size: int | None = _opt(None, "training batch size")
    epochs: int | None = _opt(None, "fixed length: exactly N epochs, no early stop (default: train to a plateau, "
                                    "docs/accuracy.md)")
    lr: float | None = _opt(None, "learning rate")
    # plateau protocol (TrainSpec.budget_steps, patience, ...)
    budget: int | None = _opt(None, "plateau protocol: cap on optimizer steps (>= 1)")
    patience: int | None = _opt(None, "stopping evaluations without a new best before stopping (>= 1)")
    eval_every: int | None = _opt(None, "steps between stopping-split evaluations (>= 1)")
    min_delta: float | None = _opt(None, "plateau protocol: patience restarts only on a stopping-accuracy gain of more "
                                         "than this fraction, in [0, 1)")
    stop_fraction: float | None = _opt(None, "share of training clips held out as the stopping split, in (0, 1)")
    seeds: Sequence[int] = _opt((0,), "comma-separated seeds, e.g. 0,1,2", text="0", parse=_seeds)
    profile: str = _opt("quick", "smoke | quick | full")
    device: str = _opt("auto", "auto | cpu | cuda | cuda:N")
    measure: str | None = _opt(None, "subset of " + ",".join(_measurements.names()))
    backbone: str | None = _opt(None, BACKBONE_HELP)
    cost_clip: str | None = _opt(None, "deployment clip for costs, TxHxW as --clip (e.g. T16x112x112), or 'off'")
    cost_backbone: str | None = _opt(None, "backbone at the deployment clip (default resnet18)")
    pretrained: bool = _opt(False, "initialise the backbone from its library's weights in the local torch/timm "
                                   "cache (never downloads)")
    weights: str | None = _opt(None, "initialise the backbone from this local state-dict file (a classifier's or "
                                     "its features', as a pre-training saves; .pth / .pt / .safetensors; never "
                                     "downloads)")
    threads: int | None = _opt(None, "torch intra-op threads (default: torch's)")
    noise: float | None = _opt(None, "synthetic: additive noise sigma")
    camera: int | None = _opt(None, "synthetic: camera pan px/frame")
    train_size: int | None = _opt(None, "synthetic: training clips")
    val_size: int | None = _opt(None, "synthetic: validation clips")
    decoder: str | None = _opt(None, "real video: auto | pyav | torchcodec")
    # latency knobs (see MeasureSpec)
    amp: str | None = _opt(None, "latency under autocast: none | fp16 | bf16", text="none")
    channels_last: bool = _opt(False, "latency with channels_last tensors")
    compile: bool = _opt(False, "latency of torch.compile(model)")

    @classmethod
    def from_text(cls, values: dict[str, Any]) -> "RunOptions":
        """From the command line's values (a field's ``parse`` turns its text into the field's value)."""
        return cls(**{f.name: f.metadata.get("parse", _same)(values[f.name]) for f in dataclasses.fields(cls)
                      if f.name in values})


def _same(v: Any) -> Any:
    return v


def parse_clip(text: str) -> tuple[int, int, int]:
    """``"T16x112x112"`` / ``"16x112x112"`` / ``"16x112"`` -> ``(T, H, W)``."""
    t = text.strip().lower().lstrip("t")
    parts = t.split("x")
    try:
        nums = [int(p) for p in parts]
    except ValueError:
        raise ValueError(f"clip must look like T16x112x112 (frames x H x W), got {text!r}") from None
    if len(nums) == 2:
        nums.append(nums[1])
    if len(nums) != 3 or min(nums) < 1:
        raise ValueError(f"clip must look like T16x112x112 (frames x H x W) with positive numbers, got {text!r}")
    return nums[0], nums[1], nums[2]


def build_run_spec(opts: RunOptions, *, resolved_device: str | None = None) -> RunSpec:
    """Profile defaults with ``opts`` applied; every bad value raises ``ValueError`` with one clear line.

    The spec carries the resolved device (``auto`` -> ``cuda`` or ``cpu``; ``resolved_device`` when the caller has
    resolved it already): the device is part of the point's hash, so a resume finds the same keys."""
    check_options(opts)
    prof = get_profile(opts.profile)
    models = tuple(list_models(opts.models))
    clip = prof.clip
    if opts.frames is not None:
        if opts.frames < 1:
            raise ValueError(f"--frames must be >= 1, got {opts.frames}")
        clip = clip.with_(frames=opts.frames)
    if opts.size is not None:
        h, w = parse_size(opts.size)
        clip = clip.with_(height=h, width=w)
    train = prof.train
    if opts.batch_size is not None:
        train = replace(train, batch_size=opts.batch_size)
    if opts.epochs is not None:
        train = replace(train, epochs=opts.epochs)
    if opts.lr is not None:
        train = replace(train, lr=opts.lr)
    for opt, field in (("budget", "budget_steps"), ("patience", "patience"), ("eval_every", "eval_every"),
                       ("min_delta", "min_delta"), ("stop_fraction", "stop_fraction")):
        if getattr(opts, opt) is not None:
            train = replace(train, **{field: getattr(opts, opt)})  # TrainSpec names the flag and range
    backbone = opts.backbone or "small_cnn"
    for b in (backbone, opts.cost_backbone):
        if b is not None:
            check_backbone_name(b)
    if opts.weights is not None:
        if not os.path.isfile(opts.weights):
            raise ValueError(f"--weights {opts.weights}: no such file (weights are only read from local files)")
        from fusion_models.backbone import read_state_dict

        try:
            read_state_dict(opts.weights)
        except Exception as exc:  # noqa: BLE001 - an unpickling, zip or safetensors error: the file is not weights
            raise ValueError(f"--weights {opts.weights}: not a readable state dict "
                             f"({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''})") from None
    if opts.pretrained and backbone == "small_cnn":
        raise ValueError("--pretrained: small_cnn has no pretrained weights; pick --backbone resnet18, timm:NAME or tv:NAME")
    cost = prof.cost
    if opts.cost_clip is not None:
        if opts.cost_clip.lower() in COST_OFF:
            cost = replace(cost, enabled=False)
        else:
            t, h, w = parse_clip(opts.cost_clip)
            cost = replace(cost, clip=cost.clip.with_(frames=t, height=h, width=w))
    if opts.cost_backbone is not None:
        cost = replace(cost, backbone=opts.cost_backbone)
    known = _measurements.names()
    measurements = known
    if opts.measure:
        measurements = tuple(m.strip() for m in opts.measure.split(",") if m.strip())
        bad = [m for m in measurements if m not in known]
        if bad or not measurements:
            raise ValueError(f"unknown measurement {', '.join(bad) or opts.measure!r}; choose from {', '.join(known)}")
    ds_kwargs: dict[str, Any] = {"name": opts.dataset, "root": opts.root,
                                 "train_size": prof.train_size, "val_size": prof.val_size}
    for k in ("noise", "camera", "train_size", "val_size", "decoder"):
        v = getattr(opts, k)
        if v is not None:
            ds_kwargs[k] = v
    if opts.root is not None:
        if not os.path.exists(opts.root):
            raise ValueError(f"dataset root {opts.root} does not exist")
    dataset = DatasetSpec(**ds_kwargs)
    if not opts.seeds:
        raise ValueError("--seeds needs at least one integer, e.g. --seeds 0,1,2")
    if opts.threads is not None and opts.threads < 1:
        raise ValueError(f"--threads must be >= 1, got {opts.threads}")
    amp = None if opts.amp in (None, "none") else opts.amp
    measure_spec = replace(prof.measure, amp=amp, channels_last=opts.channels_last, compile=opts.compile)
    spec = RunSpec(
        models=models, dataset=dataset, clip=clip, backbone=backbone, pretrained=opts.pretrained,
        weights=None if opts.weights is None else os.path.abspath(opts.weights), train=train, cost=cost,
        measure=measure_spec, measurements=measurements, seeds=tuple(opts.seeds),
        device=resolved_device or resolve_device(opts.device),
        threads=opts.threads, profile=prof.name,
    )
    check_run_spec(spec)
    return spec


# ---------------------------------------------------------------------------------------------- jobs
@dataclass(frozen=True)
class Job:
    """One (point, model, seed): what every executor runs (``bench.runner.Runner.run_job``: in this process, in a
    Ray task, on each DDP rank) and the owner of its records' keys."""

    spec: RunSpec
    model: str
    seed: int
    point_id: str  # spec.config_hash(), the point's records' group
    device: str    # spec.device checked on this machine (a resumed run may come from another)

    def key(self, measurement: str, scale: str | None = None, batch: int | None = None) -> str:
        """The resume key of this job's record of ``measurement`` at ``scale`` and ``batch``."""
        return record_key(self.point_id, self.model, self.seed, measurement, scale, batch)


def jobs(points: Sequence[RunSpec]) -> list[Job]:
    """Every point's jobs, seed after seed and model after model (the order the records are written in)."""
    out = []
    for spec in points:
        point_id, device = spec.config_hash(), resolve_device(spec.device)
        out += [Job(spec, name, seed, point_id, device) for seed in spec.seeds for name in spec.models]
    return out


# ------------------------------------------------------------------------------------------ ablation
def _frames(spec: RunSpec, v: str) -> RunSpec:
    t = _pos_int(v, "frames")
    return replace(spec, clip=spec.clip.with_(frames=t), cost=replace(spec.cost, clip=spec.cost.clip.with_(frames=t)))


def _size(spec: RunSpec, v: str) -> RunSpec:
    h, w = parse_size(v)
    return replace(spec, clip=spec.clip.with_(height=h, width=w))


def _dataset(field: str, cast: Callable[[str], Any]) -> Callable[[RunSpec, str], RunSpec]:
    def apply(spec: RunSpec, v: str) -> RunSpec:
        return replace(spec, dataset=replace(spec.dataset, **{field: cast(v)}))

    return apply


def _batch(spec: RunSpec, v: str) -> RunSpec:
    b = _pos_int(v, "batch")
    # Batch size is an inference knob here: accuracy and counts do not depend on it, so only
    # latency and memory are measured at each point (training keeps its batch).
    keep = tuple(m for m in spec.measurements if m in _measurements.per_batch()) or ("latency",)
    return replace(spec, measure=replace(spec.measure, latency_batches=(b,)),
                   cost=replace(spec.cost, latency_batches=(b,)), measurements=keep)


def _epochs(spec: RunSpec, v: str) -> RunSpec:
    return replace(spec, train=replace(spec.train, epochs=_pos_int(v, "epochs", minimum=0)))


def _backbone(spec: RunSpec, v: str) -> RunSpec:
    check_backbone_name(v)
    return replace(spec, backbone=v)


def _pos_int(v: str, name: str, minimum: int = 1) -> int:
    try:
        n = int(v)
    except ValueError:
        raise ValueError(f"{name} values must be integers, got {v!r}") from None
    if n < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {n}")
    return n


def _nonneg_float(name: str) -> Callable[[str], float]:
    def cast(v: str) -> float:
        try:
            x = float(v)
        except ValueError:
            raise ValueError(f"{name} values must be numbers, got {v!r}") from None
        if x < 0:
            raise ValueError(f"{name} must be >= 0, got {x}")
        return x

    return cast


KNOBS: dict[str, tuple[Callable[[RunSpec, str], RunSpec], str]] = {
    "frames": (_frames, "clip length T (training and deployment clips)"),
    "size": (_size, "training clip size HxW"),
    "noise": (_dataset("noise", _nonneg_float("noise")), "additive Gaussian noise sigma (synthetic)"),
    "camera": (_dataset("camera", lambda v: _pos_int(v, "camera", 0)), "camera pan px/frame (synthetic; 0 = off)"),
    "distractors": (_dataset("distractors", lambda v: _pos_int(v, "distractors", 0)), "distractor sprites (synthetic)"),
    "texture": (_dataset("texture", _nonneg_float("texture")), "background texture strength (synthetic)"),
    "batch": (_batch, "inference batch for latency/memory"),
    "epochs": (_epochs, "training epochs"),
    "backbone": (_backbone, "shared 2D backbone"),
}


def parse_vary(items: Sequence[str]) -> list[tuple[str, list[str]]]:
    """``["frames=2,4,8", "lr=0.01,0.003"]`` -> ``[("frames", ["2","4","8"]), ("lr", ["0.01","0.003"])]``.
    Any field of ``bench.fields`` may vary; a list-valued field joins its items with ``+`` (``measure=params+flops``)."""
    from .fields import fields, unknown_field

    if not items:
        raise ValueError("give at least one --vary FIELD=V1,V2 (knobs: " + ", ".join(KNOBS) + "; any spec field works)")
    out: list[tuple[str, list[str]]] = []
    for item in items:
        knob, sep, values = item.partition("=")
        knob = knob.strip()
        if not sep:
            raise ValueError(f"--vary takes KNOB=V1,V2,... (KNOB: an ablation knob or any spec field), got {item!r}")
        if knob not in fields():
            raise unknown_field(knob, "knob")
        vals = [v.strip() for v in values.split(",") if v.strip()]
        if not vals:
            raise ValueError(f"--vary {knob}= needs at least one value")
        if any(k == knob for k, _ in out):
            raise ValueError(f"knob {knob!r} given twice")
        out.append((knob, vals))
    return out


def ablation_points(base: RunSpec, vary: Sequence[tuple[str, Sequence[Any]]]) -> list[RunSpec]:
    """The full grid: one ``RunSpec`` per combination, each carrying its field values in ``point``. Values are
    text (``--vary``) or typed (a config file); ``bench.fields`` checks and applies each."""
    from .fields import apply_field

    points = []
    for combo in itertools.product(*[vals for _, vals in vary]):
        spec = base
        point = []
        for (knob, _), v in zip(vary, combo):
            spec, typed = apply_field(spec, knob, v)
            point.append((knob, _typed(v) if isinstance(v, str) else list(typed) if isinstance(typed, tuple) else typed))
        points.append(replace(spec, point=tuple(point)))
        check_run_spec(points[-1])
    return points


def _typed(v: str) -> Any:
    for cast in (int, float):
        try:
            return cast(v)
        except ValueError:
            pass
    return v
