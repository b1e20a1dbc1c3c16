"""``bench study``: the notes' claims as declared experiments with computed verdicts.

    from bench.study import plan_study, run_study, evaluate_study, get_claims

    claims, problems = get_claims("all")                   # bench/study/claims.py: one entry per claim
    plan = plan_study(claims, "smoke", models=None, seeds=(0, 1), device="cpu")   # RunSpec points, merged
    run_id = run_study(plan, out="results")                # one ordinary run (Runner + RunStore), resumable
    result = evaluate_study(run_id, results_root="results")   # a Verdict per claim, from the records only

The report's claims section (``bench/report/claims.py``) renders ``evaluate_study``'s result.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from .claims import CLAIMS, Claim, Decision, Experiment, claim_names, get_claims
from .plan import STUDY_PROFILES, StudyPlan, StudyProfile, get_study_profile, plan_study
from .verdicts import ALPHA, CONTRADICTED, NOT_RESOLVED, SUPPORTED, Verdict, decide


@dataclass
class StudyResult:
    """Every claim of a study run with its verdict (in declaration order) and the run it read."""

    run_id: str
    profile: str
    verdicts: list[Verdict]
    claims: list[Claim]
    levels: dict[str, list[tuple[str, str]]]
    skipped: dict[str, str] = field(default_factory=dict)

    def table(self) -> pd.DataFrame:
        """One row per claim: name, section, verdict, effect and interval, reason."""
        by = {c.name: c for c in self.claims}
        return pd.DataFrame([{"section": by[v.claim].section, **v.as_row()} for v in self.verdicts])


def study_meta(meta: dict[str, Any]) -> dict[str, Any] | None:
    """The ``study`` entry of a run.json, or None for an ordinary run."""
    s = meta.get("study")
    return s if isinstance(s, dict) else None


def evaluate(meta: dict[str, Any], records: pd.DataFrame, run_id: str = "") -> StudyResult:
    """Verdicts of a study run from its run.json ``meta`` and its ``records`` (nothing else is read)."""
    plan = StudyPlan.from_meta(study_meta(meta) or {})
    by_name = {c.name: c for c in CLAIMS}
    claims = [by_name[n] for n in plan.claims if n in by_name]
    verdicts = []
    for c in claims:
        if c.name in plan.skipped:
            verdicts.append(Verdict(c.name, NOT_RESOLVED, f"not tested: {plan.skipped[c.name]}"))
        else:
            verdicts.append(decide(c, records, plan.levels.get(c.name, []), plan.claim_seeds.get(c.name)))
    return StudyResult(run_id, plan.profile, verdicts, claims, plan.levels, plan.skipped)


def evaluate_study(run: str, results_root: str | Path = "results") -> StudyResult:
    """``evaluate`` of a stored run (``RunNotFoundError`` / ``ValueError`` for a run that is not a study)."""
    from ..results import RunStore, load_results, resolve_run

    path = resolve_run(run, results_root)
    meta = RunStore(path.parent, path.name).read_meta()
    if study_meta(meta) is None:
        raise ValueError(f"run {path.name} is not a study (its run.json has no 'study' entry); run bench study")
    return evaluate(meta, load_results([str(path)], results_root), path.name)


def run_study(plan: StudyPlan, *, out: str | Path = "results", run_id: str | None = None, command: str = "",
              progress=None) -> str:
    """Run every point of ``plan`` into a new store (one ordinary run: resumable with ``bench study --resume``);
    returns the run id. The CLI goes through ``bench.cli._execute`` instead, for its progress and resume; both run
    through the one lifecycle, ``RunStore.begin`` then ``RunStore.execute``."""
    from ..results import RunStore
    from ..runner import Runner

    if not plan.points:
        raise ValueError("no claim of this study can be tested with the selected models")
    store, lock = RunStore.begin(Path(out), plan.points, run_id=run_id, prefix="study", meta={"study": plan.meta()},
                                 command=command or f"bench.study.run_study(profile={plan.profile!r})")
    with lock:
        store.execute(Runner(store, progress=progress), plan.points)
    return store.run_id


__all__ = [
    "ALPHA", "CLAIMS", "CONTRADICTED", "NOT_RESOLVED", "SUPPORTED", "STUDY_PROFILES", "Claim", "Decision",
    "Experiment", "StudyPlan", "StudyProfile", "StudyResult", "Verdict", "claim_names", "decide", "evaluate",
    "evaluate_study", "get_claims", "get_study_profile", "plan_study", "run_study", "study_meta",
]
