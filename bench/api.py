"""The Python API: run, report, compare and read results without the CLI (the CLI is a thin layer on the
same calls).

    import bench.api as fb
    df = fb.run(models="pool_avg,tsm", profile="smoke", device="cpu", out="results")   # records
    wide = fb.load_results(df.attrs["run_id"], wide=True)   # one row per model x point x seed
    fb.report(df.attrs["run_id"])                           # reports/<run-id>/report.{md,html}, figures
    fb.compare(df.attrs["run_id"], baseline="pool_avg")     # latency ratios with tests

``plugins=["my_models.py"]`` loads user models / datasets first (as ``bench --plugin``).
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Iterable, Sequence

import pandas as pd

from . import measurements
from .plugins import load_plugins
from .report import build_report, compare_runs
from .report.tables import SCALES
from .results import PROVENANCE_KEYS, load_results as _load_records

# Fields a wide row takes once (they are the same on every record of one model x point x seed).
IDENTITY = ("run_id", "model", "family", "fusion_point", "order_aware", "needs_flow", "seed", "point_id",
            "point", "dataset", "num_classes", "noise", "camera", "profile", "config", *PROVENANCE_KEYS)
# Fields that identify a record rather than measure anything.
_RECORD = ("schema_version", "record_id", "key", "created_at", "measurement", "scale", "batch_size")
WIDE_KEYS = ["run_id", "model", "point_id", "seed"]
# What a clip scale is: always scale-qualified, even on accuracy records.
CLIP_FIELDS = ("frames", "height", "width", "channels", "backbone")


def run(models: str | Sequence[str] = "all", *, profile: str = "quick", device: str = "auto",
        out: str | Path = "results", plugins: Sequence[str] = (), run_id: str | None = None,
        **options: Any) -> pd.DataFrame:
    """Measure ``models`` (as ``bench run``; ``options`` are ``bench.plan.RunOptions`` fields: dataset,
    frames, size, epochs, backbone, seeds, measure, ...). Returns the run's records (``load_results``);
    ``df.attrs["run_id"]`` and ``df.attrs["path"]`` name the run."""
    from .plan import RunOptions, build_run_spec
    from .results import RunStore
    from .runner import Runner

    load_plugins(list(plugins))
    models = models if isinstance(models, str) else ",".join(models)
    spec = build_run_spec(RunOptions(models=models, profile=profile, device=device, **options))
    store, lock = RunStore.begin(Path(out), [spec], run_id=run_id,
                                 command=f"bench.api.run(models={models!r}, profile={profile!r})")
    with lock:
        store.execute(Runner(store), [spec])
    df = _load_records(store.run_id, root=out)
    df.attrs.update(run_id=store.run_id, path=str(store.path))
    return df


def report(runs: str | Sequence[str] = "latest", *, results: str | Path = "results", out: str | Path = "reports",
           **options: Any):
    """``bench report``: writes the report and returns its ``ReportResult`` (``out_dir``, ``files``)."""
    return build_report(runs, results_root=results, out_root=out, **options)


def compare(run_a: str, run_b: str | None = None, *, results: str | Path = "results", **options: Any):
    """``bench compare``: returns its ``CompareResult`` (``table`` a DataFrame, ``differences``, ``figure``)."""
    return compare_runs(run_a, run_b, results_root=str(results), **options)


def load_results(runs: str | Path | Iterable[str | Path] = "latest", root: str | Path = "results", *,
                 wide: bool = False) -> pd.DataFrame:
    """One row per record (``wide=False``), or ``wide_table`` of them; JSON-in-column fields parsed."""
    df = _load_records(runs, root=root)
    return wide_table(df) if wide else parse_json_columns(df)


def _parse(v: Any) -> Any:
    if isinstance(v, str) and v[:1] in "{[":
        try:
            return json.loads(v)
        except ValueError:
            return v
    return v


def parse_json_columns(df: pd.DataFrame) -> pd.DataFrame:
    """A copy with every JSON-string cell (``config``, ``point``, ``params_by_module``, ...) parsed."""
    out = df.copy()
    for col in out.columns:
        if not (out[col].dtype == object or pd.api.types.is_string_dtype(out[col])):
            continue
        if out[col].map(lambda v: isinstance(v, str) and v[:1] in "{[").any():
            out[col] = out[col].astype(object).map(_parse)
    out.attrs.update(df.attrs)
    return out


def wide_column(field: str, measurement: str, scale: str, batch: Any) -> str:
    """``gmacs`` of a ``flops`` record at scale ``cost`` -> ``gmacs_deploy``; latency/memory add ``_b<batch>``;
    accuracy fields (measured at the train clip only) keep their names; status/error name the measurement."""
    if measurement == "accuracy" and scale == "train" and field not in ("status", "error", *CLIP_FIELDS):
        return field
    name = f"{field}_{measurement}" if field in ("status", "error") else field
    name = f"{name}_{SCALES.get(scale, scale)}"
    if measurement in measurements.per_batch() and field not in CLIP_FIELDS and batch == batch and batch is not None:
        name += f"_b{int(batch)}"
    return name


def wide_table(df: pd.DataFrame) -> pd.DataFrame:
    """One row per ``run_id x model x point_id x seed``; every measured field as ``<field>_<train|deploy>``
    (``gmacs_train``, ``gmacs_deploy``, ``latency_ms_p50_deploy_b1``, ...), so no column mixes clip scales;
    JSON-in-column fields parsed (``point`` and ``config`` are dicts)."""
    df = parse_json_columns(df)
    rows: dict[tuple, dict[str, Any]] = {}
    for rec in df.to_dict("records"):
        key = tuple(rec.get(k) for k in WIDE_KEYS)
        row = rows.setdefault(key, {k: rec.get(k) for k in IDENTITY if k in rec})
        meas, scale, batch = rec.get("measurement"), rec.get("scale"), rec.get("batch_size")
        for field, value in rec.items():
            if field in IDENTITY or field in _RECORD:
                continue
            if value is None or (isinstance(value, float) and value != value):
                continue
            row[wide_column(field, meas, scale, batch)] = value
    out = pd.DataFrame(list(rows.values()))
    out.attrs["keys"] = WIDE_KEYS
    return out
