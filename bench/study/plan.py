"""Claims -> run points: the study profile's base spec, each claim's fields and swept levels, identical
points merged so a model trained for two claims is trained once.

A study is an ordinary run (``bench.runner.Runner`` into one ``RunStore``): the points are ``RunSpec``s whose
``point`` names the fields that differ from the study's base, so ``bench report`` labels them as ablation
points and ``bench study --resume`` resumes them like ``bench run --resume``. Which point answers which
claim is kept in run.json (``StudyPlan.meta``), so verdicts are computed from the records alone.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Sequence

from fusion_models import list_models

from ..config import RunSpec
from ..fields import apply_field
from ..plan import RunOptions, build_run_spec
from ..validate import check_run_spec
from ..weights import resolve
from .claims import Claim


@dataclass(frozen=True)
class StudyProfile:
    """A study's defaults: the ``bench`` profile it builds on, fields set on every point, seeds, and the
    values of each swept knob (the first value of noise/camera is the clean level)."""

    name: str
    run_profile: str
    seeds: tuple[int, ...]
    fields: tuple[tuple[str, Any], ...]
    levels: dict[str, tuple[Any, ...]]
    about: str = ""


STUDY_PROFILES: dict[str, StudyProfile] = {
    # Seconds: every claim row exists (most verdicts are "not resolved" at this size, as they should be).
    "smoke": StudyProfile(
        "smoke", "smoke", (0, 1),
        (("epochs", 1), ("train_size", 32), ("val_size", 32), ("batch_size", 16), ("clip", "T4x24x24"),
         ("cost_clip", "T4x32x32")),
        {"frames": (2, 4), "noise": (0.0, 0.3), "camera": (0, 2)},
        "pipeline check: 32 training clips, one epoch (2 steps), 24² clips",
    ),
    # Within 30 minutes on 2 idle CPU cores (docs/study.md: the committed run's wall time). One seed: McNemar on
    # the same 800 clips resolves far more than a paired t over two seeds (t(1) = 12.7); the latency claims run
    # seeds 0..1 anyway (Experiment.min_seeds), as that costs no training; the claims whose effect has no per-clip
    # test or is smaller than the seed spread (conv_fusion.vs_logit) train seeds 0..2 for their models.
    "quick": StudyProfile(
        "quick", "quick", (0,),
        # The run profile's protocol (batch 16, <= 1500 steps, an evaluation every 75, patience 4, min_delta 0.02);
        # at <= 500 steps of 32 (until 2026-12-06) 17 of its 40 trainings ended by the budget.
        (("train_size", 1600), ("val_size", 800), ("clip", "T4x32x32")),
        {"frames": (2, 4, 8, 16), "noise": (0.0, 0.15), "camera": (0, 2)},
        "plateau protocol of the quick run profile on 1600 training clips (1280 fit + 320 stop), 800 validation "
        "clips, T4 32²",
    ),
}


def get_study_profile(name: str) -> StudyProfile:
    if name not in STUDY_PROFILES:
        raise ValueError(f"unknown study profile {name!r}; choose from {', '.join(STUDY_PROFILES)}")
    return STUDY_PROFILES[name]


@dataclass
class StudyPlan:
    """The run points of a study and, per claim, which point (level) answers it."""

    profile: str
    points: list[RunSpec]
    levels: dict[str, list[tuple[str, str]]]          # claim -> [(level label, point_id)]
    models: dict[str, list[str]]                      # claim -> models it compares (those selected)
    skipped: dict[str, str] = field(default_factory=dict)  # claim -> what is missing to test it
    claims: list[str] = field(default_factory=list)
    seeds: tuple[int, ...] = ()
    clip: str = ""                                    # the base training clip, e.g. "T6x32x32"
    # claim -> the seeds it reads: the study's, or more (Experiment.min_seeds). A point shared with a claim that
    # wants more seeds trains them for that claim's models only, and the others still read their own seeds
    claim_seeds: dict[str, list[int]] = field(default_factory=dict)

    def meta(self) -> dict[str, Any]:
        """What run.json keeps of the study (enough to compute every verdict from the records)."""
        return {"profile": self.profile, "claims": self.claims, "skipped": self.skipped, "seeds": list(self.seeds),
                "clip": self.clip, "claim_seeds": self.claim_seeds,
                "levels": {k: [list(x) for x in v] for k, v in self.levels.items()}, "models": self.models}

    @classmethod
    def from_meta(cls, d: dict[str, Any]) -> "StudyPlan":
        return cls(profile=d.get("profile", "?"), points=[],
                   levels={k: [tuple(x) for x in v] for k, v in (d.get("levels") or {}).items()},
                   models={k: list(v) for k, v in (d.get("models") or {}).items()},
                   skipped=dict(d.get("skipped") or {}), claims=list(d.get("claims") or []),
                   seeds=tuple(d.get("seeds") or ()), clip=str(d.get("clip") or ""),
                   claim_seeds={k: [int(x) for x in v] for k, v in (d.get("claim_seeds") or {}).items()})


def base_spec(profile: StudyProfile, *, seeds: Sequence[int] | None, device: str) -> RunSpec:
    """The study's base ``RunSpec``: the bench profile's defaults with the study profile's fields."""
    spec = build_run_spec(RunOptions(models="all", profile=profile.run_profile, device=device,
                                     seeds=tuple(seeds or profile.seeds), measure="accuracy"))
    for name, value in profile.fields:
        spec, _ = apply_field(spec, name, value)
    check_run_spec(spec)
    return spec


def requirement(claim: Claim, available: Sequence[str]) -> str | None:
    """What the model set lacks to test ``claim`` (None: testable)."""
    d = claim.decision
    lacking = [m for m in d.subject if m not in available]
    if lacking:
        return f"needs {', '.join(lacking)} (not in --models)"
    if d.against and not any(m in available for m in d.against):
        return f"needs one of {', '.join(d.against)} to compare with (none in --models)"
    return None


# Where a pre-training point writes each trained model's encoder (bench/weights.py placeholders); a point
# that starts from it reads the same path with {point} and {model} filled in
SAVE_WEIGHTS = "{run}/weights/{point}-{model}-seed{seed}.pt"


def plan_study(claims: Sequence[Claim], profile: str = "smoke", *, models: str | None = None,
               seeds: Sequence[int] | None = None, device: str = "cpu") -> StudyPlan:
    """Every claim's points, merged across claims; a claim the selected models cannot test is skipped with
    the reason (the others still run). Bad fields or values raise ``ValueError`` (one line).

    Points are merged by (config hash, measurements); within one, each model trains the union of the seeds
    its claims ask for (models asking for the same seeds share one ``RunSpec``; ``_group``). A claim with
    ``Experiment.pretrain`` adds a pre-training point (that model alone, ``save_weights``) ahead of every
    other point, and its models run at the claim's spec from scratch and with ``weights`` = that file."""
    prof = get_study_profile(profile)
    base = base_spec(prof, seeds=seeds, device=device)
    base_hash = base.config_hash()
    selected = set(list_models(models)) if models and models != "all" else None
    order = {m: i for i, m in enumerate(list_models("all"))}
    bc = base.clip
    plan = StudyPlan(profile=prof.name, points=[], levels={}, models={}, claims=[c.name for c in claims],
                     seeds=base.seeds, clip=f"T{bc.frames}x{bc.height}x{bc.width}")
    pretraining: dict[tuple[str, tuple[str, ...]], tuple[RunSpec, dict[str, set[int]]]] = {}
    merged: dict[tuple[str, tuple[str, ...]], tuple[RunSpec, dict[str, set[int]]]] = {}

    def differs(name: str, value: Any) -> bool:  # does this field change the base config (and its hash)?
        return apply_field(base, name, value)[0].config_hash() != base_hash

    def add(into: dict, spec: RunSpec, names: Sequence[str], wanted: set[int]) -> str:
        check_run_spec(spec)
        pid = spec.config_hash()
        _, per_model = into.setdefault((pid, spec.measurements), (spec, {}))
        for m in names:
            per_model.setdefault(m, set()).update(wanted)
        return pid

    for claim in claims:
        available = [m for m in claim.models if selected is None or m in selected]
        why = requirement(claim, available)
        if why is not None:
            plan.skipped[claim.name] = why
            continue
        plan.models[claim.name] = available
        exp = claim.experiment
        wanted = set(base.seeds) | set(range(exp.min_seeds))
        plan.claim_seeds[claim.name] = sorted(wanted)
        spec = base
        for name, value in exp.fields:
            spec, _ = apply_field(spec, name, value)
        fixed = [(n, v) for n, v in exp.fields if differs(n, v)]
        levels: list[tuple[str, list[tuple[str, Any]]]] = []
        for knob in exp.sweeps:
            levels += [(f"{knob}={v}", [(knob, v)]) for v in prof.levels[knob]]
        levels = levels or [("base", [])]
        if exp.pretrain:  # the pre-training point first, then every level from scratch and from its file
            pre = replace(spec, models=(exp.pretrain,), save_weights=SAVE_WEIGHTS,
                          point=_point(fixed + [("save_weights", SAVE_WEIGHTS)]))
            pre_id = add(pretraining, pre, [exp.pretrain], wanted)
            start = resolve(SAVE_WEIGHTS, run="{run}", point=pre_id, model=exp.pretrain, seed="{seed}")
            levels = levels + [(f"{label} pretrained" if knobs else "pretrained", knobs + [("weights", start)])
                               for label, knobs in levels]
        seen: set[str] = set()
        plan.levels[claim.name] = []
        for label, knobs in levels:
            s = spec
            for k, v in knobs:
                s, _ = apply_field(s, k, v)
            s = replace(s, point=_point(fixed + [(k, v) for k, v in knobs if differs(k, v)]))
            pid = add(merged, s, available, wanted)
            if pid in seen:  # noise=0 and camera=0 are the same clean point
                continue
            seen.add(pid)
            plan.levels[claim.name].append((label if s.point else "base", pid))
    plan.points = [p for d in (pretraining, merged) for spec, per_model in d.values()
                   for p in _group(spec, per_model, order)]
    return plan


def _point(items: Sequence[tuple[str, Any]]) -> tuple[tuple[str, Any], ...]:
    """A point's ``point``: the fields that differ from the study's base, sorted, JSON-plain."""
    return tuple(sorted((n, _plain(v)) for n, v in items))


def _group(spec: RunSpec, per_model: dict[str, set[int]], order: dict[str, int]) -> list[RunSpec]:
    """One ``RunSpec`` per distinct seed set of a point's models (the same config hash: one point of the
    records), the models in registry order, the seed sets in the order of their first model."""
    groups: dict[tuple[int, ...], list[str]] = {}
    for m in sorted(per_model, key=lambda m: order.get(m, len(order))):
        groups.setdefault(tuple(sorted(per_model[m])), []).append(m)
    return [replace(spec, models=tuple(ms), seeds=seeds) for seeds, ms in groups.items()]


def _plain(v: Any) -> Any:
    """A point value as JSON keeps it (lists for tuples)."""
    return list(v) if isinstance(v, tuple) else v
