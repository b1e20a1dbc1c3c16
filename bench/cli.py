"""The ``bench`` command: each subcommand parses, calls the library, renders. Nothing else."""
from __future__ import annotations

import os
import shlex
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, List, Optional

import typer

from .cli_errors import USER_ERRORS, OneLineGroup, Terminated, one_line, sigterm_as_interrupt
from .console import FORMAT_HELP, RunProgress, check_format, emit_rows, err_console, fail, fmt, out_console, summary_rows
from .results import short_path

# OneLineGroup renders parse errors, known and unexpected exceptions as one line + exit 2 (bench/cli_errors.py)
app = typer.Typer(cls=OneLineGroup, add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="fusionbench: every way of fusing time in a video classifier, measured side by side.")


@contextmanager
def user_errors() -> Iterator[None]:
    """Bad input becomes one line on stderr and exit code 2, never a traceback."""
    try:
        yield
    except USER_ERRORS as exc:
        from rich.markup import escape

        fail(escape(one_line(exc)))  # e.g. "pip install 'fusionbench[ray]'" must not read as rich markup


def _command_line(ctx: typer.Context | None = None) -> str:
    """The command as the user gave it (options they set explicitly, with their values)."""
    if ctx is None:
        return "bench " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    parts = ["bench"]
    parent = ctx.parent
    if parent is not None and ctx.find_root() is parent:  # group options (--plugin) before the subcommand
        for spec in parent.params.get("plugin") or ():
            parts += ["--plugin", shlex.quote(str(spec))]
    parts.append(ctx.info_name or "")
    for param in ctx.command.params:
        source = ctx.get_parameter_source(param.name)
        if source is None or source.name == "DEFAULT":
            continue
        value = ctx.params.get(param.name)
        if param.param_type_name == "argument":
            parts += [shlex.quote(str(v)) for v in (value if isinstance(value, (list, tuple)) else [value])]
            continue
        flag = param.opts[0]
        if getattr(param, "is_flag", False) and isinstance(value, bool):  # --channels-last, --macs/--no-macs
            if value or param.secondary_opts:
                parts.append(flag if value else param.secondary_opts[0])
            continue
        for v in value if isinstance(value, (list, tuple)) else [value]:
            parts += [flag, shlex.quote(str(v))]
    return " ".join(parts)


@app.callback()
def _plugins(plugin: List[str] = typer.Option([], "--plugin", help="file (or module) registering models / "
                                                                   "datasets; repeatable (docs/add_your_own.md)")) -> None:
    """Load user plug-ins before any command (``bench --plugin my_models.py run ...``)."""
    from .plugins import load_plugins

    with user_errors():
        load_plugins(plugin)


# --------------------------------------------------------------------------------------------- list
@app.command("list")
def list_cmd(
    pattern: Optional[str] = typer.Argument(None, help="wildcard(s), e.g. 'pool_*' or 'lstm,conv_lstm'"),
    macs: bool = typer.Option(True, "--macs/--no-macs", help="count GMACs at the default clip (fvcore)"),
    format: str = typer.Option("table", "--format", help=FORMAT_HELP),
) -> None:
    """Registered models: family, where time is fused, order-aware, needs flow, params/GMACs at the default clip."""
    from .catalog import model_table

    with user_errors():
        check_format(format)
        rows = model_table(pattern, with_macs=macs)
    emit_rows(rows, format, title="models at the default clip (T=8, 32x32, small_cnn, K=16)",
              left=("model", "family", "fuses time at", "order-aware", "needs flow"))


# ---------------------------------------------------------------------------------------------- run
CLIP_HELP = ("training clip T<frames>x<H>x<W>, e.g. T8x32x32: the one clip syntax, as in --cost-clip "
             "(--frames and --size set its parts)")


CONFIG_HELP = ("TOML (or YAML) file of run settings: models, seeds, profile, any spec field (lr, backbone, "
               "batch_size, ...) and a vary table of field = list of values; options given on the command line win")


def with_run_options(command):
    """Give ``command`` one ``--option`` per ``bench.plan.RunOptions`` field, where its ``options`` parameter
    stands (each option is declared once, in plan.py); ``command`` receives their values as ``options``
    (a dict of the command line's text, for ``_run_options``)."""
    import dataclasses
    import functools
    import inspect
    import typing

    from .plan import RunOptions

    hints = typing.get_type_hints(RunOptions)
    generated = []
    for f in dataclasses.fields(RunOptions):
        meta = f.metadata
        flags = meta.get("flags", (f"--{f.name.replace('_', '-')}",))
        default = meta.get("text", f.default)
        generated.append(inspect.Parameter(f.name, inspect.Parameter.KEYWORD_ONLY,
                                           default=typer.Option(default, *flags, help=meta["help"]),
                                           annotation=type(default) if "text" in meta else hints[f.name]))
    own = list(inspect.signature(command, eval_str=True).parameters.values())
    at = [p.name for p in own].index("options")
    params = [p.replace(kind=inspect.Parameter.KEYWORD_ONLY) for p in own[:at]] + generated + \
        [p.replace(kind=inspect.Parameter.KEYWORD_ONLY) for p in own[at + 1:]]
    names = {p.name for p in generated}

    @functools.wraps(command)
    def wrapper(**kw):
        return command(options={k: kw.pop(k) for k in list(kw) if k in names}, **kw)

    wrapper.__signature__ = inspect.Signature(params)
    wrapper.__annotations__ = {p.name: p.annotation for p in params}
    del wrapper.__wrapped__  # typer reads the generated signature, not the command's own
    return wrapper


def _run_options(options: dict):
    from .plan import RunOptions

    return RunOptions.from_text(options)


@app.command("run")
@with_run_options
def run_cmd(
    ctx: typer.Context,
    options: dict,  # every RunOptions field, as --models, --dataset, ... (with_run_options)
    clip: Optional[str] = typer.Option(None, "--clip", help=CLIP_HELP),
    out: Path = typer.Option(Path("results"), help="results root"),
    resume: Optional[str] = typer.Option(None, help="resume RUN_ID: measure only what it lacks"),
    nproc: Optional[int] = typer.Option(None, help="train each model with DDP on N processes of this machine "
                                                   "(spawns torchrun; global batch = --batch-size)"),
    executor: str = typer.Option("local", help="local | ray (one Ray task per point x model x seed)"),
    address: Optional[str] = typer.Option(None, help="Ray cluster to join: auto | HOST:PORT (default: local Ray)"),
    format: str = typer.Option("table", "--format", help="the closing summary: " + FORMAT_HELP),
    config: Optional[Path] = typer.Option(None, "--config", help=CONFIG_HELP),
) -> None:
    """Train and measure the selected models on identical clips; records land in results/<run-id>/."""
    from .plan import build_run_spec

    with user_errors():
        check_format(format)
    if resume is not None:
        with user_errors():
            _check_resume_flags(ctx, resume)
            ray = _launch(ctx, nproc, executor, address, None)
        return _resume(resume, out, ctx, ray=ray, fmt_name=format)
    with user_errors():
        opts = _run_options(options)
        cfg = _config(config, ctx)
        if cfg is not None and cfg.vary:
            raise ValueError(f"config {config}: a [vary] table is a sweep; run it with bench ablate --config {config}")
        opts = _with_config(opts, cfg, ctx)
        spec = _with_clip(_configured(build_run_spec(opts), cfg, ctx), clip, opts.frames, opts.size)
        ray = _launch(ctx, nproc, executor, address, [spec])
    dev = spec.device
    notice = (f"device: {dev}" + ("" if dev.startswith("cuda") else " (no CUDA GPU seen)")
              if opts.device == "auto" else None)
    _execute([spec], out, run_id=None, ctx=ctx, ray=ray, notice=notice, fmt_name=format)


def _with_clip(spec, clip: str | None, frames: int | None, size: str | None):
    """``spec`` with the training clip ``--clip`` sets (T, H and W at once)."""
    if clip is None:
        return spec
    if frames is not None or size is not None:
        raise ValueError("--clip sets frames and size at once; give --clip or --frames/--size, not both")
    from .fields import apply_field
    from .validate import check_run_spec

    spec, _ = apply_field(spec, "clip", clip)
    check_run_spec(spec)
    return spec


def _given(ctx: typer.Context) -> set[str]:
    """Names of the options the user set explicitly (they win over a config file)."""
    return {p.name for p in ctx.command.params
            if (src := ctx.get_parameter_source(p.name)) is not None and src.name != "DEFAULT"}


def _config(path: Path | None, ctx: typer.Context):
    from .sweep_config import load_config

    return load_config(path) if path is not None else None


def _with_config(opts, cfg, ctx: typer.Context):
    from .sweep_config import with_run_keys

    return with_run_keys(opts, cfg, _given(ctx))


def _configured(spec, cfg, ctx: typer.Context):
    """``spec`` with the config file's fields (those the command line did not set explicitly)."""
    if cfg is None:
        return spec
    from .sweep_config import apply_fields
    from .validate import check_run_spec

    spec = apply_fields(spec, cfg.fields, source=f"config {cfg.path}", skip=tuple(_given(ctx)))
    check_run_spec(spec)
    return spec


@app.command("ablate")
@with_run_options
def ablate_cmd(
    ctx: typer.Context,
    vary: List[str] = typer.Option([], "--vary", help="FIELD=V1,V2,... (repeatable), over any spec field: the knobs "
                                                       "frames, size, noise, camera, distractors, texture, batch, "
                                                       "epochs, backbone, or lr, batch_size, amp, ... (a wrong name "
                                                       "lists them all); list fields join items with +"),
    options: dict = None,  # every RunOptions field, as --models, --dataset, ... (with_run_options)
    clip: Optional[str] = typer.Option(None, "--clip", help=CLIP_HELP),
    out: Path = typer.Option(Path("results"), help="results root"),
    executor: str = typer.Option("local", help="local | ray (one Ray task per point x model x seed)"),
    address: Optional[str] = typer.Option(None, help="Ray cluster to join: auto | HOST:PORT (default: local Ray)"),
    format: str = typer.Option("table", "--format", help="the closing summary (one row per model and point): "
                                                         + FORMAT_HELP),
    config: Optional[Path] = typer.Option(None, "--config", help=CONFIG_HELP),
) -> None:
    """A grid over knobs; every point is an ordinary run point in one run directory."""
    from .plan import ablation_points, build_run_spec, parse_vary

    with user_errors():
        check_format(format)
        cfg = _config(config, ctx)
        grid = parse_vary(vary) if vary or cfg is None or not cfg.vary else []
        grid += [(k, v) for k, v in (cfg.vary if cfg else []) if k not in {g for g, _ in grid}]  # --vary wins
        opts = _with_config(_run_options(options), cfg, ctx)
        points = ablation_points(_with_clip(_configured(build_run_spec(opts), cfg, ctx), clip, opts.frames, opts.size),
                                 grid)
        ray = _launch(ctx, None, executor, address, points)
    _execute(points, out, run_id=None, prefix="ablate", ctx=ctx, ray=ray, fmt_name=format)


def _launch(ctx: typer.Context, nproc: int | None, executor: str, address: str | None, points):
    """Check --nproc / --executor / --address; spawn torchrun for --nproc (exits with its code); for Ray,
    the live connection (made before a run directory exists, so a bad address leaves nothing behind)."""
    from .distributed import launched_by_torchrun, per_rank_batch, torchrun_argv

    if executor not in ("local", "ray"):
        raise ValueError(f"--executor must be local or ray, got {executor!r}")
    if address is not None and executor != "ray":
        raise ValueError("--address needs --executor ray")
    if nproc is not None and (executor == "ray" or launched_by_torchrun()):
        if launched_by_torchrun():
            return None  # we are one of torchrun's ranks: _execute joins the group
        raise ValueError("--nproc (DDP on one machine) and --executor ray (tasks across machines) exclude each other")
    if nproc is not None:
        argv = torchrun_argv(nproc, _forwarded_args(ctx, drop=("nproc",)))
        for p in points or []:
            per_rank_batch(p.train.batch_size, nproc)
            if p.device.startswith("cuda"):
                import torch

                if nproc > torch.cuda.device_count():
                    raise ValueError(f"--nproc {nproc} but only {torch.cuda.device_count()} GPU(s) visible")
        import subprocess

        raise typer.Exit(subprocess.call(argv))
    if executor == "ray":
        if launched_by_torchrun():
            raise ValueError("--executor ray cannot run inside torchrun")
        from .executors import connect_ray

        return connect_ray(address)
    return None


def _forwarded_args(ctx: typer.Context, drop: tuple[str, ...]) -> list[str]:
    """This command's explicitly given arguments (as ``_command_line`` renders them, ``--plugin`` included) minus
    ``drop``."""
    args = shlex.split(_command_line(ctx))[1:]
    flags = {o for p in ctx.command.params if p.name in drop for o in p.opts}
    out, skip = [], False
    for a in args:
        if skip:
            skip = False
        elif a in flags:
            skip = True
        else:
            out.append(a)
    return out


# Flags that say how to run, not what: a resume may set them (everything else comes from run.json).
RESUME_FLAGS = ("resume", "out", "nproc", "executor", "address", "format")


def _check_resume_flags(ctx: typer.Context, resume: str, allowed: tuple[str, ...] = RESUME_FLAGS) -> None:
    """``--resume`` re-runs the recorded spec: an empty id or a flag that would change the spec is an error."""
    if not resume.strip():
        raise ValueError("--resume needs a run id (or 'latest'), got an empty one")
    given = [p.opts[0] for p in ctx.command.params if p.name not in allowed
             and (src := ctx.get_parameter_source(p.name)) is not None and src.name != "DEFAULT"]
    if given:
        raise ValueError(f"--resume continues run {short_path(resume, 80)} with its recorded settings; a resume cannot change "
                         f"{', '.join(given)} (start a new run for that)")


def _resume(run: str, out: Path, ctx: typer.Context | None = None, ray=None, fmt_name: str = "table") -> None:
    from .config import run_spec_from_dict
    from .distributed import launched_by_torchrun

    writer = not launched_by_torchrun() or int(os.environ["RANK"]) == 0
    with user_errors():
        store, lock = _open_for_resume(run, out, writer, ctx)
        meta = store.read_meta()
        if not meta.get("points"):
            raise ValueError(f"run {run} has no run.json with its points; it cannot be resumed")
        try:
            points = [run_spec_from_dict(p) for p in meta["points"]]
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise ValueError(f"{store.meta_path}: its points are not a valid run spec ({type(exc).__name__}: "
                             f"{one_line(exc)})") from None
    if writer:
        _, report = store.read()
        for msg in ([lock.repaired] if lock is not None and lock.repaired else []) + report.messages():
            err_console.print(f"[yellow]warning:[/yellow] {msg}", highlight=False, soft_wrap=True)
        err_console.print(f"resuming {store.run_id}: {len(store.done_keys())} measurements already recorded")
    return _execute(points, out, run_id=store.run_id, store=store, ctx=ctx, ray=ray, fmt_name=fmt_name)


def _open_for_resume(run: str, out: Path, writer: bool, ctx: typer.Context | None):
    """The run's store and, for the process that writes it, its writer lock (taken before any key is read)."""
    from .results import RunStore

    store = RunStore.open(out, run)
    return store, (_hold_lock(store, ctx) if writer else None)


def _hold_lock(store, ctx: typer.Context | None):
    """Take the run's writer lock until the command ends (exit, error or interrupt alike)."""
    lock = store.lock()
    if ctx is not None:
        ctx.call_on_close(lock.release)
    return lock


def _execute(points, out: Path, *, run_id: str | None, prefix: str = "run", store=None,
             ctx: typer.Context | None = None, ray=None, notice: str | None = None, fmt_name: str = "table",
             meta: dict | None = None) -> str | None:
    """Run ``points`` into a new store (or ``store``, resuming); ``meta``: extra run.json entries of a new run
    (``bench study`` keeps its plan there). Returns the run id (None on a non-writing DDP rank)."""
    from .distributed import launched_by_torchrun
    from .results import RunStore
    from .runner import Runner

    ddp = None
    if launched_by_torchrun():  # one rank of `torchrun -m bench run ...`: rank 0 alone writes and renders
        from .distributed import init_from_env

        with user_errors():
            ddp = init_from_env(points[0].device)
    if ddp is None or ddp.is_main:
        with user_errors():
            store = _open_run(points, out, run_id, prefix, store, ctx, notice, meta)
    if ddp is not None:
        store = RunStore(Path(out), ddp.broadcast(store.run_id if ddp.is_main else None))
        if not ddp.is_main:
            with user_errors():
                Runner(store, ddp=ddp).run(points)
            return None
    total = sum(len(p.models) * len(p.seeds) for p in points)
    err_console.print(f"run {store.run_id}: {len(points)} point(s), {total} model run(s) -> {store.path}"
                      + (f" (DDP: {ddp.world_size} processes, {ddp.backend})" if ddp else "")
                      + (" (Ray: " + ", ".join(f"{v:g} {k}" for k, v in sorted(ray.resources().items())
                                               if k in ("CPU", "GPU")) + ")" if ray else ""))
    if ray is not None:
        from .executors import RayRunner

        runner = RayRunner(store, ray, progress=None)
    else:
        runner = Runner(store, progress=None, ddp=ddp)
    resume_hint = f"bench run --resume {store.run_id} --out {shlex.quote(str(out))}"
    try:
        with sigterm_as_interrupt(), RunProgress(total) as prog:
            runner.emit = prog
            summary = store.execute(runner, points)  # run.json marked complete / interrupted / failed
    except KeyboardInterrupt as exc:
        err_console.print(
            f"\n[yellow]{'terminated' if isinstance(exc, Terminated) else 'interrupted'}[/yellow]: "
            f"{sum(runner.summary.counts.values())} record(s) kept in {store.path}\nresume with: {resume_hint}"
        )
        raise typer.Exit(143 if isinstance(exc, Terminated) else 130)
    except Exception as exc:  # noqa: BLE001 - full disk, a bad dataset, ...: one line, the run marked failed
        fail(f"{one_line(exc)} (records so far kept in {store.path}"
             + ("" if store.status() == "failed" else "; run.json could not be marked failed")
             + f"; resume with: {resume_hint})")
    finally:
        if ray is not None:
            ray.shutdown()
    _closing_summary(store, summary, out, fmt_name)
    return store.run_id


def _open_run(points, out: Path, run_id: str | None, prefix: str, store, ctx: typer.Context | None,
              notice: str | None, meta: dict | None):
    """A new run's store, locked and started (``RunStore.begin``), or the resumed ``store`` marked running again."""
    from .results import RunStore

    if store is not None:
        store.update_meta(status="running", resumed_command=_command_line(ctx))
        return store
    store, lock = RunStore.begin(out, points, command=_command_line(ctx), run_id=run_id, prefix=prefix, meta=meta)
    if ctx is not None:  # one writer per run, for the life of the command
        ctx.call_on_close(lock.release)
    if notice:  # printed once the run exists, so bad input prints its one error line alone
        err_console.print(notice)
    return store


def _closing_summary(store, summary, out: Path, fmt_name: str) -> None:
    """The run's summary table, then its counts and where its results and report are."""
    emit_rows(summary_rows(store.records()), fmt_name, title=f"run {store.run_id}")
    bad = {k: v for k, v in summary.counts.items() if k != "ok"}
    (out_console if fmt_name == "table" else err_console).print(  # csv/json: stdout holds the data alone
        f"{sum(summary.counts.values())} record(s) in {summary.wall_time_s:.0f} s"
        + (f" ({', '.join(f'{v} {k}' for k, v in bad.items())})" if bad else "")
        + (f", {summary.skipped} already recorded" if summary.skipped else "")
        + f"\nresults: {store.path}\nreport:  bench report {store.run_id}"
        + (f" --results {out}" if str(out) != "results" else "")
    )


# ------------------------------------------------------------------------------------------- report
@app.command("report")
def report_cmd(
    runs: List[str] = typer.Argument(..., help="run id(s), paths, or 'latest'"),
    format: str = typer.Option("md,html", "--format", help="any of md,html,tex, comma-separated (tex: report.tex "
                                                           "and tables/main.tex, booktabs)"),
    results: Path = typer.Option(Path("results"), help="results root"),
    out: Path = typer.Option(Path("reports"), help="reports root"),
    include_flagged: bool = typer.Option(False, "--include-flagged",
                                         help="keep latencies flagged noisy/contended on the Pareto front"),
) -> None:
    """Markdown, self-contained HTML and/or LaTeX report (tables; figures as PNG, PDF, SVG) in reports/<run-id>/."""
    from .report import build_report

    with user_errors():  # build_report checks the formats (one line naming the bad one)
        formats = tuple(f.strip() for f in format.split(",") if f.strip())
        res = build_report(list(runs), results_root=str(results), out_root=str(out), formats=formats,
                           include_flagged=include_flagged)
    out_console.print(f"report: {res.out_dir}")
    for p in getattr(res, "files", []) or []:
        out_console.print(f"  {p}")


@app.command("compare")
def compare_cmd(
    run_a: str = typer.Argument(..., help="run id, path or 'latest'"),
    run_b: Optional[str] = typer.Argument(None, help="second run (e.g. GPU vs CPU, after vs before)"),
    metric: str = typer.Option("latency_ms_p50", help="column to compare"),
    baseline: str = typer.Option("single_frame", help="baseline model (one-run comparison)"),
    results: Path = typer.Option(Path("results"), help="results root"),
    out: Optional[Path] = typer.Option(None, help="where to write the table and figure (default: reports/compare-...)"),
    format: str = typer.Option("table", "--format", help=FORMAT_HELP),
) -> None:
    """Latency (or any metric) of strategies relative to a baseline, or of two runs, with Mann-Whitney U tests."""
    from .report import compare_runs

    with user_errors():
        check_format(format)
        res = compare_runs(run_a, run_b, metric=metric, baseline=baseline, results_root=str(results),
                           out_dir=str(out) if out else None)
    for diff in res.differences:  # before any number: the two runs were not set up alike
        err_console.print(f"[yellow]warning:[/yellow] {diff}", highlight=False)
    two = run_b is not None
    rows = []
    for _, r in res.table.iterrows():
        ci = (f"{r['ratio_ci_low']:.3g}-{r['ratio_ci_high']:.3g}"
              if "ratio_ci_low" in r and r["ratio_ci_low"] == r["ratio_ci_low"] else "-")
        p = r.get("p_holm", float("nan"))
        pv = "-" if p != p else (f"{p:.2g}" if p >= 1e-4 else "<1e-4") + f" {r.get('signif', '')}".rstrip()
        vals = {"A": r["value_a"], "B": r["value_b"]} if two else {"value": r["value"], "base": r["baseline_value"]}
        rows.append({"group": r["group"], "model": str(r["model"]), **{k: fmt(v) for k, v in vals.items()},
                     "ratio": fmt(r["ratio"]), "95% CI": ci, "p (Holm)": pv, "status": str(r["status"])})
    if format == "table" and out_console.is_terminal:  # one titled table per group
        for group in dict.fromkeys(r["group"] for r in rows):
            g = [{k: v for k, v in r.items() if k != "group"} for r in rows if r["group"] == group]
            if all(r["status"] == "ok" for r in g):
                g = [{k: v for k, v in r.items() if k != "status"} for r in g]
            emit_rows(g, title=f"{metric}, {group}: " + (f"B={run_b} / A={run_a}" if two else f"relative to {baseline}"))
    else:
        emit_rows(rows, format)
    for note in getattr(res, "notes", []) or []:
        err_console.print(f"note: {note}")
    if getattr(res, "figure", None):
        (out_console if format == "table" else err_console).print(f"figure: {res.figure}")


# ---------------------------------------------------------------------------------------------- env
@app.command("env")
def env_cmd(device: str = typer.Option("auto")) -> None:
    """What the suite will run on: device, threads, versions, git commit."""
    from .results import environment
    from .measure import resolve_device

    with user_errors():
        dev = resolve_device(device)
    from rich.table import Table

    t = Table(title="environment", show_header=False)
    for k, v in environment(dev).items():
        t.add_row(k, str(v))
    out_console.print(t)


def _mount_subapps() -> None:
    try:
        from .cli_data import app as data_app

        app.add_typer(data_app, name="data", help="synthetic clips as real videos, dataset previews")
    except ImportError:  # pragma: no cover - data sub-app is part of the package; guard for partial installs
        pass
    try:
        from .cli_flow import app as flow_app

        app.add_typer(flow_app, name="flow", help="optical-flow throughput and robustness tables")
    except ImportError:  # pragma: no cover
        pass
    from .cli_study import study_cmd

    app.command("study")(study_cmd)


_mount_subapps()


def main() -> None:
    app()


if __name__ == "__main__":
    main()
