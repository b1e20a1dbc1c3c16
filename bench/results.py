"""Result records: one flat, schema-versioned dict per (model, config, seed, measurement, scale, batch).

Records are appended to ``results/<run-id>/records.jsonl`` the moment they are measured (flush + fsync),
so a killed run keeps everything it finished; ``run.json`` beside them holds the spec and environment.
``load_results`` turns one or more runs into a tidy pandas DataFrame (one row per record).

Columns (units in the names): see ``COLUMNS``; measurement-specific columns are absent (NaN) elsewhere.
"""
from __future__ import annotations

import datetime as _dt
import json
import os
import platform
import re
import subprocess
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Iterator

SCHEMA_VERSION = 1
STATUSES = ("ok", "oom", "diverged", "error")

# The documented columns of a record (a record may carry more, e.g. per-class accuracy).
COLUMNS: dict[str, str] = {
    # identity
    "schema_version": "record schema version",
    "run_id": "run directory name",
    "record_id": "unique id of this record",
    "key": "resume key: point|model|seed|measurement|scale|batch",
    "created_at": "UTC ISO time the record was written",
    "model": "registered model name",
    "family": "ceiling family: single_frame | order_invariant | order_aware",
    "fusion_point": "where time is fused",
    "order_aware": "model output changes when frames are reversed",
    "needs_flow": "model computes optical flow in forward",
    "measurement": "accuracy | params | flops | latency | memory",
    "scale": "train (training clip) | cost (deployment clip)",
    "status": "ok | oom | diverged | error",
    "error": "message when status != ok",
    # config
    "seed": "seed of model init and data order",
    "point_id": "hash of the config (groups ablation points)",
    "point": "JSON of the ablation knobs of this point",
    "dataset": "dataset name",
    "frames": "T of the clip measured",
    "height": "H of the clip measured",
    "width": "W of the clip measured",
    "backbone": "shared 2D encoder",
    "num_classes": "K",
    "batch_size": "batch of this measurement (latency/memory) or of training (accuracy)",
    "noise": "synthetic additive noise sigma",
    "camera": "synthetic camera pan magnitude",
    # accuracy
    "acc_top1": "validation top-1 accuracy (fraction)",
    "acc_shape": "fraction with the shape attribute right (synthetic)",
    "acc_direction": "fraction with the direction attribute right (synthetic)",
    "ceiling_top1": "Bayes ceiling of the model's family on this dataset (fraction)",
    "train_time_s": "wall time of training",
    "final_train_loss": "mean loss of the last epoch",
    "val_loss": "mean validation loss",
    # params / flops
    "params": "total parameters (shared counted once)",
    "params_trainable": "trainable parameters",
    "first_conv_params": "parameters of the first convolution",
    "gmacs": "fvcore multiply-accumulates x1e9 per clip (with our handlers)",
    "gflops_torch": "torch FlopCounterMode FLOPs x1e9 per clip (2 per MAC)",
    # latency
    "latency_ms_p50": "median latency per batch (ms)",
    "latency_ms_p90": "90th percentile (ms)",
    "latency_ms_p99": "99th percentile (ms)",
    "latency_ms_mean": "mean (ms)",
    "latency_ms_iqr": "interquartile range (ms)",
    "latency_ms_ci95_low": "95% CI of the median, low (ms; order statistics)",
    "latency_ms_ci95_high": "95% CI of the median, high (ms)",
    "latency_samples_ms": "raw samples (ms), kept for significance tests",
    "throughput_clips_s": "batch_size / median latency",
    "flow_latency_ms_p50": "median latency of the flow stage alone (two-stream models)",
    "flow_share": "flow_latency_ms_p50 / latency_ms_p50",
    "achieved_gflops_s": "2 * gmacs * batch / median latency",
    "peak_fraction": "achieved_gflops_s / matmul_peak_gflops_s",
    # memory
    "peak_mem_mib": "peak live tensor memory of an inference forward (MiB)",
    "train_peak_mem_mib": "peak live tensor memory of one training step (MiB)",
    # distributed
    "ddp_world_size": "processes that trained the model (1 = no DDP)",
    "measured_under_ddp": "cost measured inside a DDP group (always false: costs are measured on one device)",
    # provenance
    "device": "cpu | cuda:N",
    "device_name": "CPU or GPU model",
    "threads": "torch intra-op threads",
    "torch_version": "torch.__version__",
    "git_commit": "commit of the suite",
    "git_dirty": "uncommitted changes present",
}


def now_iso() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def new_run_id(prefix: str = "run") -> str:
    """``run-YYYYmmdd-HHMMSS-xxxx``: sortable by time, unique."""
    stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    return f"{prefix}-{stamp}-{uuid.uuid4().hex[:4]}"


# ----------------------------------------------------------------------------------------- provenance
def _git(*args: str, cwd: Path) -> str | None:
    try:
        out = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


def _cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def environment(device: str = "cpu") -> dict[str, Any]:
    """Versions, device, threads, flags and git state: stored in run.json and on every record."""
    import torch

    import bench

    repo = Path(__file__).resolve().parent.parent
    commit = _git("rev-parse", "HEAD", cwd=repo)
    dirty = _git("status", "--porcelain", "--untracked-files=no", cwd=repo)
    env: dict[str, Any] = {
        "fusionbench_version": bench.__version__,
        "python_version": platform.python_version(),
        "platform": platform.platform(),
        "torch_version": torch.__version__,
        "cuda_version": torch.version.cuda,
        "cudnn_version": torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None,
        "cuda_available": torch.cuda.is_available(),
        "device": device,
        "cpu_name": _cpu_name(),
        "cpu_count": os.cpu_count(),
        "threads": torch.get_num_threads(),
        "interop_threads": torch.get_num_interop_threads(),
        "tf32_matmul": torch.backends.cuda.matmul.allow_tf32,
        "tf32_cudnn": torch.backends.cudnn.allow_tf32,
        "cudnn_benchmark": torch.backends.cudnn.benchmark,
        "git_commit": commit,
        "git_dirty": bool(dirty) if dirty is not None else None,
    }
    if device.startswith("cuda") and torch.cuda.is_available():
        idx = torch.device(device).index or 0
        env["device_name"] = torch.cuda.get_device_name(idx)
        try:
            out = subprocess.run(
                ["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                capture_output=True, text=True, timeout=10,
            )
            env["driver_version"] = out.stdout.strip().splitlines()[0] if out.returncode == 0 else None
        except (OSError, subprocess.TimeoutExpired, IndexError):
            env["driver_version"] = None
    else:
        env["device_name"] = env["cpu_name"]
    for mod in ("torchvision", "fvcore", "pandas", "av", "cv2"):
        try:
            env[f"{mod}_version"] = __import__(mod).__version__
        except Exception:  # noqa: BLE001 - an optional package missing is a fact, not an error
            env[f"{mod}_version"] = None
    return env


# Provenance columns copied from the environment onto every record.
PROVENANCE_KEYS = (
    "device", "device_name", "threads", "torch_version", "cuda_version", "git_commit", "git_dirty",
    "fusionbench_version",
)


# ---------------------------------------------------------------------------------------------- store
class RunNotFoundError(FileNotFoundError):
    """A run id or directory that does not exist."""


@dataclass
class RunStore:
    """Append-only store of one run: ``<root>/<run_id>/{run.json, records.jsonl}``."""

    root: Path
    run_id: str

    @property
    def path(self) -> Path:
        return Path(self.root) / self.run_id

    @property
    def records_path(self) -> Path:
        return self.path / "records.jsonl"

    @property
    def meta_path(self) -> Path:
        return self.path / "run.json"

    @classmethod
    def create(cls, root: str | Path, run_id: str | None = None) -> "RunStore":
        store = cls(Path(root), run_id or new_run_id())
        store.path.mkdir(parents=True, exist_ok=False)
        store.records_path.touch()
        return store

    @classmethod
    def open(cls, root: str | Path, run_id: str) -> "RunStore":
        path = resolve_run(run_id, root)
        return cls(path.parent, path.name)

    def write_meta(self, meta: dict[str, Any]) -> None:
        """Atomically (re)write run.json."""
        tmp = self.meta_path.with_suffix(".json.tmp")
        with open(tmp, "w") as f:
            json.dump(meta, f, indent=2, sort_keys=True, default=str)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.meta_path)

    def read_meta(self) -> dict[str, Any]:
        if not self.meta_path.exists():
            return {}
        with open(self.meta_path) as f:
            return json.load(f)

    def update_meta(self, **changes: Any) -> None:
        meta = self.read_meta()
        meta.update(changes)
        self.write_meta(meta)

    def append(self, record: dict[str, Any]) -> dict[str, Any]:
        """Append one record durably (flush + fsync) and return it."""
        record = {"schema_version": SCHEMA_VERSION, "run_id": self.run_id, "record_id": uuid.uuid4().hex[:12],
                  "created_at": now_iso(), **record}
        if record.get("status") not in STATUSES:
            raise ValueError(f"record status must be one of {STATUSES}, got {record.get('status')!r}")
        line = json.dumps(record, default=_json_default, allow_nan=True)
        with open(self.records_path, "a") as f:
            f.write(line + "\n")
            f.flush()
            os.fsync(f.fileno())
        return record

    def records(self) -> list[dict[str, Any]]:
        return list(iter_records(self.records_path))

    def done_keys(self) -> set[str]:
        """Keys already measured (any status but ``error``, which a resume retries)."""
        return {r["key"] for r in self.records() if r.get("key") and r.get("status") != "error"}


def _json_default(x: Any) -> Any:
    try:
        import numpy as np

        if isinstance(x, np.generic):
            return x.item()
        if isinstance(x, np.ndarray):
            return x.tolist()
    except ImportError:  # pragma: no cover
        pass
    return str(x)


def iter_records(path: str | Path) -> Iterator[dict[str, Any]]:
    """Records of a records.jsonl; a torn last line (killed mid-write) is skipped, never fatal."""
    with open(path) as f:
        for line in f:
            line = line.strip()
            if not line:
                continue
            try:
                yield json.loads(line)
            except json.JSONDecodeError:
                continue


_RUN_RE = re.compile(r"^[\w.\-]+$")


def list_runs(root: str | Path = "results") -> list[Path]:
    """Run directories under ``root`` (those holding a records.jsonl), oldest first."""
    root = Path(root)
    if not root.is_dir():
        return []
    runs = [p for p in root.iterdir() if (p / "records.jsonl").exists()]
    return sorted(runs, key=lambda p: ((p / "run.json").stat().st_mtime if (p / "run.json").exists() else 0, p.name))


def resolve_run(run: str | Path, root: str | Path = "results") -> Path:
    """A run directory from an id (``run-...``), a path, or ``latest``; raises ``RunNotFoundError``."""
    run_s = str(run)
    if run_s == "latest":
        runs = list_runs(root)
        if not runs:
            raise RunNotFoundError(f"no runs under {root}/ yet; start one with `bench run --models all`")
        return runs[-1]
    for cand in (Path(run_s), Path(root) / run_s):
        if (cand / "records.jsonl").exists():
            return cand
    known = ", ".join(p.name for p in list_runs(root)[-5:]) or "none"
    raise RunNotFoundError(f"run {run_s!r} not found under {root}/ (recent: {known})")


def load_results(runs: str | Path | Iterable[str | Path] = "latest", root: str | Path = "results"):
    """A tidy ``pandas.DataFrame``: one row per record of the given runs (ids, paths or ``latest``)."""
    import pandas as pd

    if isinstance(runs, (str, Path)):
        runs = [runs]
    rows: list[dict[str, Any]] = []
    for run in runs:
        path = resolve_run(run, root)
        rows.extend(iter_records(path / "records.jsonl"))
    df = pd.DataFrame(rows)
    if df.empty:
        return pd.DataFrame(columns=list(COLUMNS))
    return df
