"""The measurements: one table from a measurement's name to everything the suite does with it.

Like fvcore's table from op name to handler: a ``Measurement`` says how the runner calls it (which clip
scales, which batches, the function), the record columns it writes (description, unit, how the report
shows and aggregates each, whether ``bench compare`` takes it and which way is better) and its console
line and summary cells. ``config`` (the names), ``runner`` (the calls), ``plan`` (the batch knob),
``results.COLUMNS``, ``report.tables`` / ``render`` / ``compare`` and ``console`` all read this table, so
adding a measurement is one ``register(Measurement(...))`` (see docs/architecture.md).

    name      how     scales       batches                       columns (main-table cells)
    accuracy  train   train        training batch                acc_top1, ... (its own main-table columns)
    params    call    train, cost  1                             params, first_conv_params
    flops     call    train, cost  1                             gmacs
    latency   rounds  train, cost  the scale's latency batches   latency_ms_p50, _p90, throughput_clips_s
    memory    call    train, cost  training batch (train), 1     peak_mem_mib
"""
from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Callable, Iterator

HOWS = ("call", "train", "rounds")


@dataclass(frozen=True)
class Column:
    """One record column a measurement writes (units in the name, as everywhere)."""

    name: str
    description: str                # results.COLUMNS
    unit: str = ""                  # set: ``bench compare --metric NAME`` takes it, its values in this unit
    better: str = "lower"           # "lower" | "higher": which way a compared ratio is an improvement
    samples: str | None = None      # the statistic of the raw latency samples it summarises (compare's U test)
    main: str | None = None         # header of its per-scale cell in the report's main table ({b}: ", batch N")
    divisor: float = 1.0            # that cell shows value / divisor (params in M, ...)
    batch: str = "min"              # which measured batch the main table shows: "min" | "max"
    ablation: str | None = None     # axis label of its panel in the ablation tables and figures
    over_seeds: str = "median"      # ablation cell over seeds: "median" | "mean_ci" (mean ± Student-t CI)


@dataclass(frozen=True)
class Summary:
    """One cell of the closing summary table of ``bench run`` (one row per model [and point])."""

    header: str
    column: str
    scale: str | None = None        # only records at this scale (None: any)
    batch: int | None = None        # only records of this batch (None: any)
    agg: str = "first"              # over seeds: "first" (record) | "last" | "mean"
    pct: bool = False               # a fraction shown in %


@dataclass
class Context:
    """What a ``how="call"`` measurement gets: the spec, the clip and batch of this record, the device, and
    ``model()`` (built once per model and scale, on the device, in eval mode)."""

    spec: Any                       # bench.config.RunSpec
    scale: str                      # "train" | "cost"
    clip: Any                       # fusion_models.clip.ClipSpec of this scale
    batch: int
    device: str
    model: Callable[[], Any]


def _one(spec: Any, scale: str) -> tuple[int, ...]:
    return (1,)


@dataclass(frozen=True)
class Measurement:
    """One measurement: everything the runner, plan, store, report, compare and console need to know."""

    name: str
    columns: tuple[Column, ...]
    how: str = "call"               # "call": run(ctx) per scale and batch; "train": the runner's training path
                                    # (accuracy); "rounds": the runner's interleaved latency rounds
    run: Callable[[Context], dict[str, Any]] | None = None  # how="call": record fields (may set status/error)
    scales: tuple[str, ...] = ("train", "cost")
    batches: Callable[[Any, str], tuple[int, ...]] = _one   # (spec, scale) -> the batches it is measured at
    per_batch: bool = False         # its value depends on the batch: kept by --vary batch, b<N> in wide rows
    report_rank: int = 100          # where its columns sit among the others' in report tables (low first)
    compare_rank: int = 100         # where its metrics sit in compare's list (the default metric's first)
    line: Callable[[dict[str, Any]], str] = lambda r: ""    # console line body of an ok record
    summary: tuple[Summary, ...] = ()

    def __post_init__(self) -> None:
        if self.how not in HOWS:
            raise ValueError(f"measurement {self.name!r}: how must be one of {', '.join(HOWS)}, got {self.how!r}")
        if self.how == "call" and self.run is None:
            raise ValueError(f"measurement {self.name!r}: how='call' needs a run(ctx) function")


_TABLE: dict[str, Measurement] = {}


def register(m: Measurement) -> Measurement:
    """Add ``m`` to the table (a duplicate name or a column another measurement writes raises ``ValueError``)."""
    if m.name in _TABLE:
        raise ValueError(f"measurement {m.name!r} is already registered")
    owned = {c.name: other.name for other in _TABLE.values() for c in other.columns}
    clash = [c.name for c in m.columns if c.name in owned]
    if clash:
        raise ValueError(f"measurement {m.name!r}: column(s) {', '.join(clash)} already written by "
                         f"{owned[clash[0]]!r}")
    _TABLE[m.name] = m
    return m


def unregister(name: str) -> Measurement:
    """Remove a measurement (tests, plug-ins that undo themselves); unknown names raise ``KeyError``."""
    return _TABLE.pop(name)


def names() -> tuple[str, ...]:
    """The registered measurement names, in the order a run measures them."""
    return tuple(_TABLE)


def get(name: str) -> Measurement:
    return _TABLE[name]


def measurements(rank: str | None = None) -> list[Measurement]:
    """The descriptors in run order, or sorted by ``"report"`` / ``"compare"`` rank (stable)."""
    ms = list(_TABLE.values())
    return ms if rank is None else sorted(ms, key=lambda m: getattr(m, f"{rank}_rank"))


def per_batch() -> tuple[str, ...]:
    """Measurements whose value depends on the batch (measured per batch size)."""
    return tuple(m.name for m in _TABLE.values() if m.per_batch)


def columns(rank: str | None = None) -> Iterator[tuple[Measurement, Column]]:
    """Every ``(measurement, column)`` pair, measurements in ``measurements(rank)`` order."""
    for m in measurements(rank):
        for c in m.columns:
            yield m, c


def compare_metrics() -> dict[str, tuple[str, str | None]]:
    """metric -> (its measurement, the statistic of the raw latency samples it summarises, or None): by compare
    rank, and within a measurement the metrics a test resolves (raw samples) before those with ratios only."""
    pairs = [(m, c) for m, c in columns("compare") if c.unit]
    pairs.sort(key=lambda mc: (mc[0].compare_rank, mc[1].samples is None))
    return {c.name: (m.name, c.samples) for m, c in pairs}


def column(name: str) -> Column | None:
    """The descriptor of record column ``name`` (None: no measurement declares it)."""
    return next((c for _, c in columns() if c.name == name), None)


class LiveMap(Mapping):
    """A read-only mapping recomputed from the table on every access, so a measurement registered later
    (a plug-in, a test) is seen by module-level names such as ``results.COLUMNS``."""

    def __init__(self, build: Callable[[], dict]) -> None:
        self._build = build

    def __getitem__(self, key: Any) -> Any:
        return self._build()[key]

    def __iter__(self) -> Iterator:
        return iter(self._build())

    def __len__(self) -> int:
        return len(self._build())

    def __repr__(self) -> str:
        return repr(self._build())


# ---------------------------------------------------------------------------------------- formatting
def fmt(x: Any, spec: str = ".3g") -> str:
    """A number formatted with ``spec``; None and NaN as "-", anything else as ``str``."""
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "-"
    return format(x, spec) if isinstance(x, (int, float)) else str(x)


def pct(v: Any) -> Any:
    """A fraction in % rounded to 0.1 (None and NaN stay None)."""
    return None if v is None or (isinstance(v, float) and math.isnan(v)) else round(100 * float(v), 1)


# ---------------------------------------------------------------------------------------- the built-ins
def _latency_batches(spec: Any, scale: str) -> tuple[int, ...]:
    return tuple(spec.measure.latency_batches if scale == "train" else spec.cost.latency_batches)


def _training_batch(spec: Any, scale: str) -> tuple[int, ...]:
    return (spec.train.batch_size,)


def _memory_batch(spec: Any, scale: str) -> tuple[int, ...]:
    return (spec.train.batch_size if scale == "train" else 1,)


def _params(ctx: Context) -> dict[str, Any]:
    from .measure import count_params

    return count_params(ctx.model()).as_dict()


def _flops(ctx: Context) -> dict[str, Any]:
    from .measure import count_flops

    return count_flops(ctx.model(), ctx.clip.dummy(1, device=ctx.device)).as_dict()


def _memory(ctx: Context) -> dict[str, Any]:
    """Peak memory of an inference forward and, unless the profile turns it off, of one training step."""
    from .measure import measure_memory

    model = ctx.model()
    x = ctx.clip.dummy(ctx.batch, device=ctx.device)
    out = dict(measure_memory(model, x, device=ctx.device, train_step=False).as_dict())
    if ctx.spec.measure.memory_train_step:
        tr = measure_memory(model, x, device=ctx.device, train_step=True).as_dict()
        out["train_peak_mem_mib"] = tr.get("peak_mem_mib")
        if "reserved_mib" in tr:
            out["train_reserved_mib"] = tr.get("reserved_mib")
    model.eval()
    return out


def _latency_line(r: dict[str, Any]) -> str:
    body = f"batch {r.get('batch_size')}: p50 {fmt(r.get('latency_ms_p50'), '.3g')} ms, p90 {fmt(r.get('latency_ms_p90'), '.3g')} ms"
    if r.get("flow_share") is not None:
        body += f", flow {100 * r['flow_share']:.0f}%"
    return body


register(Measurement(
    "accuracy", how="train", scales=("train",), batches=_training_batch, report_rank=0, compare_rank=4,
    columns=(
        Column("acc_top1", "validation top-1 accuracy (fraction)", unit="fraction", better="higher",
               ablation="top-1 accuracy (%)", over_seeds="mean_ci"),
        Column("acc_shape", "fraction with the shape attribute right (synthetic)"),
        Column("acc_direction", "fraction with the direction attribute right (synthetic)"),
        Column("ceiling_top1", "Bayes ceiling of the model's family on this dataset (fraction)"),
        Column("train_time_s", "wall time of training", unit="s"),
        Column("final_train_loss", "mean loss of the last epoch"),
        Column("val_loss", "mean validation loss"),
        # training compute and sample efficiency of the plateau protocol (docs/accuracy.md)
        Column("steps", "optimizer steps taken"),
        Column("samples_seen", "training clips the optimizer steps consumed"),
        Column("train_step_gmacs", "counted GMACs of one training step (forward + backward) at the training batch"),
        Column("train_gmacs", "training compute consumed: train_step_gmacs / batch x samples_seen"),
        Column("learning_curve", "JSON list, one point per stopping evaluation (step, samples, train_gmacs, stop_acc, ...)"),
        Column("steps_to_90", "step of the first evaluation at >= 90 % of the family ceiling (empty: never)"),
        Column("gmacs_to_90", "training GMACs at steps_to_90"),
        Column("steps_to_99", "step of the first evaluation at >= 99 % of the family ceiling (empty: never)"),
        Column("gmacs_to_99", "training GMACs at steps_to_99"),
        Column("curve_auc", "mean stopping accuracy over [0, budget_steps] (fraction)"),
    ),
    line=lambda r: (f"top-1 {fmt(pct(r.get('acc_top1')), '.1f')} % (ceiling {fmt(pct(r.get('ceiling_top1')), '.0f')} %) "
                    f"in {fmt(r.get('train_time_s'), '.1f')} s"),
    summary=(Summary("top-1 %", "acc_top1", agg="mean", pct=True), Summary("ceiling %", "ceiling_top1", agg="last", pct=True)),
))
register(Measurement(
    "params", run=_params, report_rank=2, compare_rank=3,
    columns=(
        Column("params", "total parameters (shared counted once)", unit="parameters", main="params (M)", divisor=1e6,
               ablation="parameters (M)"),
        Column("params_trainable", "trainable parameters"),
        Column("first_conv_params", "parameters of the first convolution", unit="parameters",
               main="1st-conv params (k)", divisor=1e3),
    ),
    line=lambda r: f"{fmt(r.get('params'), ',')} params, first conv {fmt(r.get('first_conv_params'), ',')}",
    summary=(Summary("params (train)", "params", scale="train"),),
))
register(Measurement(
    "flops", run=_flops, report_rank=1, compare_rank=2,
    columns=(
        Column("gmacs", "fvcore multiply-accumulates x1e9 per clip (with our handlers)", unit="GMACs", main="GMACs",
               ablation="GMACs per clip"),
        Column("gflops_torch", "torch FlopCounterMode FLOPs x1e9 per clip (2 per MAC)", unit="GFLOPs"),
    ),
    line=lambda r: f"{fmt(r.get('gmacs'), '.4g')} GMACs, {fmt(r.get('gflops_torch'), '.4g')} GFLOPs (torch)",
    summary=(Summary("GMACs (deploy)", "gmacs", scale="cost"),),
))
register(Measurement(
    "latency", how="rounds", batches=_latency_batches, per_batch=True, report_rank=3, compare_rank=0,
    columns=(
        Column("latency_ms_p50", "median latency per batch (ms)", unit="ms", samples="p50", main="latency p50 (ms{b})",
               ablation="latency p50 (ms)"),
        Column("latency_ms_p90", "90th percentile (ms)", unit="ms", samples="p90", main="latency p90 (ms{b})"),
        Column("latency_ms_p99", "99th percentile (ms)", unit="ms", samples="p99"),
        Column("latency_ms_mean", "mean (ms)", unit="ms", samples="mean"),
        Column("latency_ms_iqr", "interquartile range (ms)"),
        Column("latency_ms_ci95_low", "95% CI of the median, low (ms; order statistics)"),
        Column("latency_ms_ci95_high", "95% CI of the median, high (ms)"),
        Column("latency_samples_ms", "raw samples (ms), kept for significance tests"),
        Column("throughput_clips_s", "batch_size / median latency", unit="clips/s", better="higher", samples="inv_p50",
               main="throughput (clips/s{b})", batch="max"),
        Column("flow_latency_ms_p50", "median latency of the flow stage alone (two-stream models)", unit="ms"),
        Column("flow_share", "flow_latency_ms_p50 / latency_ms_p50"),
        Column("achieved_gflops_s", "2 * gmacs * batch / median latency", unit="GFLOP/s", better="higher",
               samples="inv_p50"),
        Column("peak_fraction", "achieved_gflops_s / matmul_peak_gflops_s"),
    ),
    line=_latency_line,
    summary=(Summary("p50 ms b1 (train)", "latency_ms_p50", scale="train", batch=1),
             Summary("p50 ms b1 (deploy)", "latency_ms_p50", scale="cost", batch=1)),
))
register(Measurement(
    "memory", run=_memory, batches=_memory_batch, per_batch=True, report_rank=4, compare_rank=1,
    columns=(
        Column("peak_mem_mib", "peak live tensor memory of an inference forward (MiB)", unit="MiB",
               main="peak mem (MiB{b})", ablation="peak memory (MiB)"),
        Column("train_peak_mem_mib", "peak live tensor memory of one training step (MiB)", unit="MiB"),
    ),
    line=lambda r: f"peak {fmt(r.get('peak_mem_mib'), '.3g')} MiB (train step {fmt(r.get('train_peak_mem_mib'), '.3g')} MiB)",
    summary=(Summary("peak MiB (deploy)", "peak_mem_mib", scale="cost"),),
))
