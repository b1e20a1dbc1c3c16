"""``bench study``: parse, plan (bench/study), run through the same path as ``bench run``, render the verdicts."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from .console import emit_rows, err_console, fail, out_console

FORMATS_HELP = "report formats, any of md,html,tex (comma-separated)"
RESUME_FLAGS = ("resume", "out", "reports", "format")  # how to run and render, not what: a resume may set them


def study_cmd(
    ctx: typer.Context,
    profile: str = typer.Option("quick", help="study profile: smoke (seconds) | quick (~30 min on 2 cores)"),
    models: Optional[str] = typer.Option(None, "--models", "-m", help="restrict to these models (NAME,NAME | GLOB); "
                                                                     "a claim they cannot test is named and skipped"),
    seeds: Optional[str] = typer.Option(None, help="comma-separated seeds (default: the study profile's)"),
    device: str = typer.Option("auto", help="auto | cpu | cuda | cuda:N"),
    claims: str = typer.Option("all", "--claims", help="all | NAME,NAME | GLOB (e.g. 'two_stream.*'); "
                                                      "bench study --list names them"),
    out: Path = typer.Option(Path("results"), help="results root"),
    reports: Path = typer.Option(Path("reports"), help="reports root (the claims section goes into the report)"),
    resume: Optional[str] = typer.Option(None, help="resume study RUN_ID: measure only what it lacks, then judge"),
    format: str = typer.Option("md,html", "--format", help=FORMATS_HELP),
    list_claims: bool = typer.Option(False, "--list", help="list the declared claims and exit"),
) -> None:
    """Run one declared experiment per claim of the notes and compute each verdict (docs/study.md)."""
    from .cli import _check_resume_flags, _execute, _resume, user_errors

    from .study import CLAIMS, get_claims, plan_study

    if list_claims:
        emit_rows([{"claim": c.name, "notes §": c.section, "tested as": c.statement, "decided by": c.decision.kind}
                   for c in CLAIMS], "table", left=("claim", "notes §", "tested as", "decided by"))
        return
    with user_errors():
        formats = _formats(format)
        if resume is not None:
            _check_resume_flags(ctx, resume, RESUME_FLAGS)
            _study_run(resume, out)  # a run that is not a study: one line, before anything runs
        else:
            chosen, problems = get_claims(claims)
            for p in problems:  # an unknown name: said, the rest still runs
                err_console.print(f"[yellow]warning:[/yellow] {p}", highlight=False, soft_wrap=True)
            if not chosen:
                raise ValueError(f"no claim selected by --claims {claims!r}")
            from .config import parse_int_list

            plan = plan_study(chosen, profile, models=models, device=device,
                              seeds=parse_int_list(seeds, what="--seeds") if seeds is not None else None)
            for name, why in plan.skipped.items():
                err_console.print(f"[yellow]claim {name} not tested:[/yellow] {why}", highlight=False, soft_wrap=True)
            if not plan.points:
                raise ValueError("none of the selected claims can be tested with --models " + str(models))
    if resume is not None:
        run_id = _resume(resume, out, ctx)
    else:
        run_id = _execute(plan.points, out, run_id=None, prefix="study", ctx=ctx, meta={"study": plan.meta()})
    if run_id is None:  # a non-writing DDP rank
        return
    from .report import build_report
    from .study import evaluate_study

    with user_errors():
        result = evaluate_study(run_id, out)
        res = build_report([run_id], results_root=str(out), out_root=str(reports), formats=formats)
    _render(result.verdicts)
    out_console.print(f"claims report: {res.markdown or res.html or res.latex}")


def _formats(text: str) -> tuple[str, ...]:
    from .report.build import FORMATS

    formats = tuple(f.strip() for f in text.split(",") if f.strip())
    bad = [f for f in formats if f not in FORMATS]
    if bad or not formats:
        raise ValueError(f"--format takes any of {', '.join(FORMATS)} (comma-separated); got {text!r}")
    return formats


def _study_run(run: str, out: Path) -> None:
    from .results import RunStore, resolve_run
    from .study import study_meta

    path = resolve_run(run, out)
    if study_meta(RunStore(path.parent, path.name).read_meta()) is None:
        raise ValueError(f"run {path.name} is not a study (no 'study' in its run.json); resume it with bench run --resume")


def _render(verdicts) -> None:
    from .report.claims import fmt_effect

    emit_rows([{"claim": v.claim, "verdict": v.verdict, "effect [95% CI]": fmt_effect(v.effect, v.lo, v.hi, v.exact),
                "why": v.reason} for v in verdicts], "table", title="claims of the notes",
              left=("claim", "verdict", "why"))


__all__ = ["study_cmd", "fail"]
