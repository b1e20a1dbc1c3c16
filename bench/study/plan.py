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
    # seeds 0..1 anyway (Experiment.min_seeds), as that costs no training.
    "quick": StudyProfile(
        "quick", "quick", (0,),
        (("train_size", 1600), ("val_size", 800), ("budget_steps", 500), ("eval_every", 50), ("patience", 4),
         ("clip", "T4x32x32")),
        {"frames": (2, 4, 8, 16), "noise": (0.0, 0.15), "camera": (0, 2)},
        "plateau protocol on 1600 training clips (1280 fit + 320 stop), <= 500 steps, 800 validation clips, T4 32²",
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

    def meta(self) -> dict[str, Any]:
        """What run.json keeps of the study (enough to compute every verdict from the records)."""
        return {"profile": self.profile, "claims": self.claims, "skipped": self.skipped, "seeds": list(self.seeds),
                "clip": self.clip,
                "levels": {k: [list(x) for x in v] for k, v in self.levels.items()}, "models": self.models}

    @classmethod
    def from_meta(cls, d: dict[str, Any]) -> "StudyPlan":
        return cls(profile=d.get("profile", "?"), points=[],
                   levels={k: [tuple(x) for x in v] for k, v in (d.get("levels") or {}).items()},
                   models={k: list(v) for k, v in (d.get("models") or {}).items()},
                   skipped=dict(d.get("skipped") or {}), claims=list(d.get("claims") or []),
                   seeds=tuple(d.get("seeds") or ()), clip=str(d.get("clip") or ""))


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
    if d.kind == "missing":
        return None
    lacking = [m for m in d.subject if m not in available]
    if lacking:
        return f"needs {', '.join(lacking)} (not in --models)"
    if d.against and not any(m in available for m in d.against):
        return f"needs one of {', '.join(d.against)} to compare with (none in --models)"
    return None


def plan_study(claims: Sequence[Claim], profile: str = "smoke", *, models: str | None = None,
               seeds: Sequence[int] | None = None, device: str = "cpu") -> StudyPlan:
    """Every claim's points, merged across claims; a claim the selected models cannot test is skipped with
    the reason (the others still run). Bad fields or values raise ``ValueError`` (one line)."""
    prof = get_study_profile(profile)
    base = base_spec(prof, seeds=seeds, device=device)
    base_hash = base.config_hash()
    selected = set(list_models(models)) if models and models != "all" else None
    order = {m: i for i, m in enumerate(list_models("all"))}
    bc = base.clip
    plan = StudyPlan(profile=prof.name, points=[], levels={}, models={}, claims=[c.name for c in claims],
                     seeds=base.seeds, clip=f"T{bc.frames}x{bc.height}x{bc.width}")
    merged: dict[tuple[str, tuple[str, ...]], RunSpec] = {}

    def differs(name: str, value: Any) -> bool:  # does this field change the base config (and its hash)?
        return apply_field(base, name, value)[0].config_hash() != base_hash

    for claim in claims:
        available = [m for m in claim.models if selected is None or m in selected]
        why = requirement(claim, available)
        if why is not None:
            plan.skipped[claim.name] = why
            continue
        plan.models[claim.name] = available
        if claim.decision.kind == "missing":
            plan.levels[claim.name] = []
            continue
        spec = base
        for name, value in claim.experiment.fields:
            spec, _ = apply_field(spec, name, value)
        fixed = [(n, v) for n, v in claim.experiment.fields if differs(n, v)]
        levels: list[tuple[str, list[tuple[str, Any]]]] = []
        for knob in claim.experiment.sweeps:
            levels += [(f"{knob}={v}", [(knob, v)]) for v in prof.levels[knob]]
        levels = levels or [("base", [])]
        seen: set[str] = set()
        plan.levels[claim.name] = []
        for label, knobs in levels:
            s = spec
            for k, v in knobs:
                s, _ = apply_field(s, k, v)
            point = tuple(sorted((n, _plain(v)) for n, v in fixed + [(k, v) for k, v in knobs if differs(k, v)]))
            s = replace(s, models=tuple(sorted(available, key=lambda m: order.get(m, len(order)))), point=point,
                        seeds=tuple(sorted(set(s.seeds) | set(range(claim.experiment.min_seeds)))))
            check_run_spec(s)
            pid = s.config_hash()
            if pid in seen:  # noise=0 and camera=0 are the same clean point
                continue
            seen.add(pid)
            plan.levels[claim.name].append((label if point else "base", pid))
            key = (pid, s.measurements)
            if key in merged:
                union = set(merged[key].models) | set(s.models)
                s = replace(merged[key], models=tuple(sorted(union, key=lambda m: order.get(m, len(order)))),
                            seeds=tuple(sorted(set(merged[key].seeds) | set(s.seeds))))
            merged[key] = s
    plan.points = list(merged.values())
    return plan


def _plain(v: Any) -> Any:
    """A point value as JSON keeps it (lists for tuples)."""
    return list(v) if isinstance(v, tuple) else v
