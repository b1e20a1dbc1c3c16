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
import subprocess
import time
import uuid
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator

SCHEMA_VERSION = 1
STATUSES = ("ok", "oom", "diverged", "error")

# The documented columns of a record (a record may carry more, e.g. per-class accuracy): identity and
# config, then each measurement's own columns (bench/measurements.py), then distributed and provenance.
_IDENTITY_COLUMNS: dict[str, str] = {
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
    "measurement": "",  # the registered names, filled in by _columns
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
}
_RUN_COLUMNS: dict[str, str] = {
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


def _columns() -> dict[str, str]:
    from . import measurements

    cols = {**_IDENTITY_COLUMNS, "measurement": " | ".join(measurements.names())}
    cols.update((c.name, c.description) for _, c in measurements.columns())
    return {**cols, **_RUN_COLUMNS}


def _live_columns():
    from .measurements import LiveMap

    return LiveMap(_columns)


COLUMNS = _live_columns()  # live: a measurement registered later (a plug-in) is documented too


def record_key(point_id: str, model: str, seed: int, measurement: str, scale: str | None = None,
               batch: int | None = None) -> str:
    """The resume key of a record, ``point_id|model|seed|measurement|scale|batch`` (a Ray task that failed as a
    whole: ``point_id|model|seed|task``). The one place a key is spelled, for the local, DDP and Ray paths."""
    parts = (point_id, model, seed, measurement) + ((scale, batch) if scale is not None else ())
    return "|".join(map(str, parts))


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

    from .allocator import tune_malloc

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
        "malloc": tune_malloc(),  # applies it too (idempotent): bench/allocator.py
        "flow_cpu_backend": _flow_cpu_backend(device),  # who computes Horn–Schunck here (fusion_models/flow.py)
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
    for mod in ("torchvision", "fvcore", "pandas", "av", "cv2", "numba"):
        try:
            env[f"{mod}_version"] = __import__(mod).__version__
        except Exception:  # noqa: BLE001 - an optional package missing is a fact, not an error
            env[f"{mod}_version"] = None
    return env


def _flow_cpu_backend(device: str) -> str:
    """What the run's default HornSchunck modules compute with on ``device``: the fused kernel is CPU-only,
    so on a GPU it is the torch ops whatever the CPU default."""
    from fusion_models.flow import flow_cpu_backend

    try:
        backend = flow_cpu_backend()
    except ValueError as exc:  # a bad $FUSIONBENCH_FLOW_BACKEND: the flow models' records say so as errors
        return f"invalid ({exc})"
    return backend if str(device).startswith("cpu") else f"torch (on {device}; {backend} on CPU)"


# Provenance columns copied from the environment onto every record.
PROVENANCE_KEYS = (
    "device", "device_name", "threads", "torch_version", "cuda_version", "git_commit", "git_dirty",
    "fusionbench_version", "malloc", "flow_cpu_backend",
)


# ---------------------------------------------------------------------------------------------- store
class RunNotFoundError(FileNotFoundError):
    """A run id or directory that does not exist."""


class CorruptRunError(ValueError):
    """A run.json or records.jsonl that cannot be read as this suite's (the message names the file)."""


class RunLockedError(RuntimeError):
    """Another process is writing this run (the message names its PID)."""


class StoreWriteError(OSError):
    """A write to the store failed (disk full, read-only, ...); nothing partial was left behind."""

    def __init__(self, errno: int | None, message: str) -> None:
        super().__init__(message)
        self.errno = errno


class RecordsWarning(UserWarning):
    """Unreadable lines or duplicate keys found (and resolved) while reading records."""


RUN_LOCK = "run.lock"
TORN_SIDECAR = "records.jsonl.torn"


def _os_reason(exc: OSError) -> str:
    return exc.strerror or str(exc) or type(exc).__name__


def short_path(p: str | Path, limit: int = 160) -> str:
    """``p`` as text, with the middle elided when it is longer than ``limit`` characters."""
    s = str(p)
    return s if len(s) <= limit else f"{s[: limit // 2]}...{s[-(limit // 2 - 3):]}"


@dataclass
class ReadReport:
    """What reading a records.jsonl found besides records: unreadable lines and duplicate keys."""

    path: Path
    bad_lines: list[int]          # 1-based line numbers that are not a JSON object
    duplicates: dict[str, int]    # key -> extra final records dropped (two writers wrote the same key)

    def messages(self) -> list[str]:
        """One line per problem, for a warning or the CLI."""
        out = []
        if self.bad_lines:
            shown = ", ".join(map(str, self.bad_lines[:10])) + (" ..." if len(self.bad_lines) > 10 else "")
            out.append(f"{short_path(self.path)}: {len(self.bad_lines)} unreadable line(s) skipped (line {shown})")
        if self.duplicates:
            extra = sum(self.duplicates.values())
            out.append(f"{short_path(self.path)}: {len(self.duplicates)} key(s) recorded more than once; kept the first "
                       f"record of each, dropped {extra} duplicate(s) (e.g. {next(iter(self.duplicates))})")
        return out


@dataclass
class RunStore:
    """Append-only store of one run: ``<root>/<run_id>/{run.json, records.jsonl}``.

    One writer per run: ``lock()`` takes an advisory lock (``run.lock``, holding the writer's PID) for the life
    of a run or resume and cuts a torn last line into ``records.jsonl.torn`` before anything is appended."""

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
        try:
            store.path.mkdir(parents=True, exist_ok=False)
            store.records_path.touch()
        except OSError as exc:
            raise StoreWriteError(exc.errno, f"cannot create the run directory {short_path(store.path)}: "
                                             f"{_os_reason(exc)}") from None
        return store

    @classmethod
    def open(cls, root: str | Path, run_id: str) -> "RunStore":
        path = resolve_run(run_id, root)
        return cls(path.parent, path.name)

    # ------------------------------------------------------------------------------ one writer per run
    def lock(self) -> "RunLock":
        """Take the run's writer lock (released when the process ends, however it ends) and repair a torn
        last line; raises ``RunLockedError`` naming the holder's PID when another process writes the run."""
        lock = RunLock(self.path / RUN_LOCK)
        lock.acquire(self.run_id)
        try:
            lock.repaired = self.repair_torn_tail()
        except BaseException:
            lock.release()
            raise
        return lock

    def repair_torn_tail(self) -> str | None:
        """A last line without its newline (killed or disk full mid-write): completed when it is a whole record,
        else cut off into ``records.jsonl.torn``; returns what was done (None: nothing to do)."""
        try:
            with open(self.records_path, "rb+") as f:
                size = f.seek(0, os.SEEK_END)
                if size == 0:
                    return None
                f.seek(size - 1)
                if f.read(1) == b"\n":
                    return None
                chunk = min(size, 1 << 20)
                while True:  # find the last newline
                    f.seek(size - chunk)
                    buf = f.read(chunk)
                    nl = buf.rfind(b"\n")
                    if nl >= 0 or chunk == size:
                        break
                    chunk = min(size, chunk * 2)
                start = size - chunk + nl + 1 if nl >= 0 else 0
                f.seek(start)
                tail = f.read()
                if _parse_line(tail) is not None:
                    f.seek(size)
                    f.write(b"\n")
                    f.flush()
                    os.fsync(f.fileno())
                    return f"{short_path(self.records_path)}: completed a last line that lacked its newline"
                with open(self.path / TORN_SIDECAR, "ab") as side:
                    side.write(tail + b"\n")
                    side.flush()
                    os.fsync(side.fileno())
                f.truncate(start)
                f.flush()
                os.fsync(f.fileno())
        except IsADirectoryError:
            raise CorruptRunError(f"{short_path(self.records_path)} is a directory, not a records file") from None
        except OSError as exc:
            raise StoreWriteError(exc.errno, f"cannot repair {short_path(self.records_path)}: {_os_reason(exc)}") from None
        return (f"{short_path(self.records_path)}: cut off a torn last line ({len(tail)} bytes, killed mid-write) "
                f"into {TORN_SIDECAR}")

    # -------------------------------------------------------------------------------------- run.json
    def write_meta(self, meta: dict[str, Any]) -> None:
        """Atomically (re)write run.json through a temp file unique to this process."""
        tmp = self.path / f".run.json.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp"
        try:
            with open(tmp, "w") as f:
                json.dump(meta, f, indent=2, sort_keys=True, default=str)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self.meta_path)
        except OSError as exc:
            try:
                tmp.unlink()
            except OSError:
                pass
            raise StoreWriteError(exc.errno, f"cannot write {short_path(self.meta_path)}: {_os_reason(exc)}") from None

    def read_meta(self) -> dict[str, Any]:
        """run.json as a dict ({} when absent); ``CorruptRunError`` naming the file when it is not one."""
        if not self.meta_path.exists():
            return {}
        try:
            with open(self.meta_path, encoding="utf-8") as f:
                meta = json.load(f)
        except (ValueError, OSError) as exc:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
            why = _os_reason(exc) if isinstance(exc, OSError) else str(exc)
            raise CorruptRunError(f"{short_path(self.meta_path)} is not a valid run.json: {why}") from None
        if not isinstance(meta, dict):
            raise CorruptRunError(f"{short_path(self.meta_path)} is not a valid run.json: "
                                  f"expected a JSON object, got {type(meta).__name__}")
        return meta

    def update_meta(self, **changes: Any) -> None:
        meta = self.read_meta()
        meta.update(changes)
        self.write_meta(meta)

    # --------------------------------------------------------------------------------------- records
    def append(self, record: dict[str, Any]) -> dict[str, Any]:
        """Append one record durably (one write, then fsync) and return it. A failed write is truncated back,
        so no torn line is left, and raises ``StoreWriteError``."""
        record = {"schema_version": SCHEMA_VERSION, "run_id": self.run_id, "record_id": uuid.uuid4().hex[:12],
                  "created_at": now_iso(), **record}
        if record.get("status") not in STATUSES:
            raise ValueError(f"record status must be one of {STATUSES}, got {record.get('status')!r}")
        data = (json.dumps(record, default=_json_default, allow_nan=True) + "\n").encode()
        try:
            fd = os.open(self.records_path, os.O_WRONLY | os.O_APPEND)
        except OSError as exc:
            raise StoreWriteError(exc.errno, f"cannot write {short_path(self.records_path)}: {_os_reason(exc)}") from None
        try:
            start = os.fstat(fd).st_size
            try:
                written = 0
                while written < len(data):
                    written += os.write(fd, data[written:])
                os.fsync(fd)
            except OSError as exc:
                try:
                    os.ftruncate(fd, start)  # the whole line or nothing
                except OSError:
                    pass
                raise StoreWriteError(exc.errno, f"cannot write a record to {short_path(self.records_path)}: "
                                                 f"{_os_reason(exc)}") from None
        finally:
            os.close(fd)
        return record

    def read(self) -> tuple[list[dict[str, Any]], ReadReport]:
        """Records (duplicate keys resolved) and what reading them found."""
        return read_records(self.records_path)

    def records(self) -> list[dict[str, Any]]:
        return self.read()[0]

    def done_keys(self) -> set[str]:
        """Keys already measured (any status but ``error``, which a resume retries)."""
        return {r["key"] for r in self.records() if r.get("key") and r.get("status") != "error"}

    # ------------------------------------------------------------------------------------- lifecycle
    # begin (folder, writer lock, run.json "running") -> execute (the executor appends records; run.json
    # "complete", or "interrupted" / "failed" with the counts so far) is the one lifecycle of a run: the CLI,
    # bench.api.run and bench.study.run_study all go through it. A resume re-marks the run "running" instead.
    @classmethod
    def begin(cls, root: str | Path, points: list[Any], *, command: str, run_id: str | None = None,
              prefix: str = "run", meta: dict[str, Any] | None = None) -> tuple["RunStore", "RunLock"]:
        """A new run of ``points``: its folder, its writer lock (held until released, or the process ends)
        and run.json started (``start``); ``meta``: extra run.json entries (``bench study`` keeps its plan)."""
        store = cls.create(root, run_id or new_run_id(prefix))
        lock = store.lock()
        try:
            store.start(points, command=command, device=points[0].device)
            if meta:
                store.update_meta(**meta)
        except BaseException:
            lock.release()
            raise
        return store, lock

    def execute(self, runner: Any, points: list[Any]) -> "RunSummary":
        """``runner.run(points)`` (any executor: ``Runner``, ``RayRunner``) with run.json marked as the run ends:
        ``complete``; ``interrupted`` on Ctrl-C / SIGTERM (``KeyboardInterrupt``), ``failed`` on any other
        exception, both with ``runner.summary``'s counts so far and the exception re-raised. Marking an
        ending run is best effort (a full disk may refuse even that; ``status()`` then still says running)."""
        try:
            summary = runner.run(points)
        except KeyboardInterrupt:
            self.mark(runner.summary, "interrupted")
            raise
        except Exception:
            self.mark(runner.summary, "failed")
            raise
        self.finish(summary, "complete")
        return summary

    def mark(self, summary: "RunSummary", status: str) -> bool:
        """``finish`` where run.json can be written; False where it cannot (a full disk)."""
        try:
            self.finish(summary, status)
        except OSError:
            return False
        return True

    def status(self) -> str | None:
        """run.json's ``status`` (None when it cannot be read)."""
        try:
            return self.read_meta().get("status")
        except (OSError, ValueError):
            return None

    def start(self, points: list[Any], *, command: str, device: str) -> None:
        """Write run.json for a new run: the spec of every point (``RunSpec``), environment, command."""
        self.write_meta({
            "run_id": self.run_id,
            "schema_version": SCHEMA_VERSION,
            "command": command,
            "status": "running",
            "started_at": now_iso(),
            "points": [p.to_dict() for p in points],
            "spec": points[0].to_dict(),
            "environment": environment(device),
        })

    def finish(self, summary: "RunSummary", status: str) -> None:
        """Mark run.json ``complete`` / ``interrupted`` / ``failed`` with wall time and counts."""
        self.update_meta(status=status, finished_at=now_iso(), wall_time_s=round(summary.wall_time_s, 2),
                         counts=summary.counts)


@dataclass
class RunSummary:
    """What a run did: counts per status, wall time, the store it wrote to."""

    run_id: str
    path: str
    wall_time_s: float
    counts: dict[str, int] = field(default_factory=dict)
    skipped: int = 0

    def add(self, record: dict[str, Any]) -> None:
        """Count a record written by this run under its status."""
        self.counts[record["status"]] = self.counts.get(record["status"], 0) + 1


class RunLock:
    """An advisory ``flock`` on a file holding the writer's PID; the kernel drops it when the process dies."""

    def __init__(self, path: Path) -> None:
        self.path, self.fd = Path(path), None
        self.repaired: str | None = None  # what RunStore.lock did to a torn last line, if anything

    def acquire(self, run_id: str) -> None:
        import fcntl

        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise StoreWriteError(exc.errno, f"cannot lock run {short_path(run_id, 80)} for writing "
                                             f"({short_path(self.path)}): {_os_reason(exc)}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            holder = ""
            for _ in range(20):  # the holder writes its PID just after locking
                holder = os.pread(fd, 32, 0).decode(errors="replace").strip()
                if holder:
                    break
                time.sleep(0.05)
            os.close(fd)
            raise RunLockedError(f"run {short_path(run_id, 80)} is being written by process {holder or '(unknown)'} "
                                 f"(lock {short_path(self.path)}); wait for it to finish or stop it, then resume") from None
        try:
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        except OSError:  # disk full: the lock holds all the same, only the PID is not shown
            pass
        self.fd = fd

    def release(self) -> None:
        if self.fd is not None:
            os.close(self.fd)  # closing the descriptor releases the flock
            self.fd = None

    def __del__(self) -> None:
        self.release()

    def __enter__(self) -> "RunLock":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.release()


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


def _parse_line(raw: bytes) -> dict[str, Any] | None:
    """One records.jsonl line as a record, or None when it is not a JSON object (junk, torn, a list...)."""
    try:
        rec = json.loads(raw.decode("utf-8"))
    except ValueError:  # JSONDecodeError and UnicodeDecodeError
        return None
    return rec if isinstance(rec, dict) else None


def _scan(path: str | Path) -> Iterator[tuple[int, dict[str, Any] | None]]:
    path = Path(path)
    try:
        with open(path, "rb") as f:
            for n, raw in enumerate(f, 1):
                if raw.strip():
                    yield n, _parse_line(raw.strip())
    except IsADirectoryError:
        raise CorruptRunError(f"{short_path(path)} is a directory, not a records file") from None
    except OSError as exc:
        if isinstance(exc, FileNotFoundError):
            raise
        raise CorruptRunError(f"cannot read {short_path(path)}: {_os_reason(exc)}") from None


def iter_records(path: str | Path) -> Iterator[dict[str, Any]]:
    """Every readable record of a records.jsonl, as written (a torn or junk line is skipped, never fatal;
    ``read_records`` also says which lines and resolves duplicate keys)."""
    for _, rec in _scan(path):
        if rec is not None:
            yield rec


def read_records(path: str | Path) -> tuple[list[dict[str, Any]], ReadReport]:
    """``(records, report)``: unreadable lines skipped and listed; one record per key.

    A key with a final record (any status but ``error``) keeps the first one written (the one a resume's
    done-set honoured); errors of that key are superseded (a resume retried them). A key with only error
    records keeps the last. Two final records for a key (two writers) count as a duplicate in the report."""
    bad: list[int] = []
    recs: list[dict[str, Any]] = []
    for n, rec in _scan(path):
        if rec is None:
            bad.append(n)
        else:
            recs.append(rec)
    final: dict[str, int] = {}
    last_error: dict[str, int] = {}
    dups: dict[str, int] = {}
    for i, r in enumerate(recs):
        key = r.get("key")
        if not isinstance(key, str):
            continue
        if r.get("status") == "error":
            last_error[key] = i
        elif key in final:
            dups[key] = dups.get(key, 0) + 1
        else:
            final[key] = i
    keep = [i for i, r in enumerate(recs)
            if not isinstance(r.get("key"), str)
            or final.get(r["key"]) == i or (r["key"] not in final and last_error.get(r["key"]) == i)]
    return [recs[i] for i in keep], ReadReport(Path(path), bad, dups)


def is_run_dir(path: str | Path) -> bool:
    """A run of this suite: a records.jsonl file and a run.json object with its ``run_id`` and ``points``."""
    path = Path(path)
    try:
        if not (path / "records.jsonl").is_file():
            return False
        meta = RunStore(path.parent, path.name).read_meta()
    except (CorruptRunError, OSError):
        return False
    return isinstance(meta.get("run_id"), str) and isinstance(meta.get("points"), list) \
        and meta.get("schema_version", SCHEMA_VERSION) == SCHEMA_VERSION


def list_runs(root: str | Path = "results") -> list[Path]:
    """Run directories of this suite under ``root`` (see ``is_run_dir``), oldest first."""
    root = Path(root)
    try:
        if not root.is_dir():
            return []
        runs = [p for p in root.iterdir() if is_run_dir(p)]
    except OSError:
        return []
    return sorted(runs, key=lambda p: ((p / "run.json").stat().st_mtime, p.name))


def resolve_run(run: str | Path, root: str | Path = "results") -> Path:
    """A run directory from an id (``run-...``), a path, or ``latest``; raises ``RunNotFoundError``.

    ``latest`` is the newest folder holding a valid run.json of this suite (a foreign folder is never picked)."""
    run_s = str(run)
    if not run_s.strip():
        raise RunNotFoundError("an empty run id was given; pass a run id, a run directory or 'latest'")
    if run_s == "latest":
        runs = list_runs(root)
        if not runs:
            raise RunNotFoundError(f"no runs under {short_path(root)}/ yet; start one with `bench run --models all`")
        return runs[-1]
    for cand in (Path(run_s), Path(root) / run_s):
        try:
            if (cand / "records.jsonl").exists():
                return cand
        except OSError:  # e.g. a name longer than the file system allows
            continue
    known = ", ".join(p.name for p in list_runs(root)[-5:]) or "none"
    raise RunNotFoundError(f"run {short_path(run_s, 100)!r} not found under {short_path(root)}/ (recent: {known})")


def load_results(runs: str | Path | Iterable[str | Path] = "latest", root: str | Path = "results"):
    """A tidy ``pandas.DataFrame``: one row per record of the given runs (ids, paths or ``latest``).

    Unreadable lines and duplicate keys are reported as ``RecordsWarning`` (and one record per key kept);
    ``df.attrs["read_problems"]`` holds the same lines."""
    import pandas as pd

    if isinstance(runs, (str, Path)):
        runs = [runs]
    rows: list[dict[str, Any]] = []
    problems: list[str] = []
    for run in runs:
        path = resolve_run(run, root)
        recs, report = read_records(path / "records.jsonl")
        rows.extend(recs)
        problems += report.messages()
    for msg in problems:
        warnings.warn(msg, RecordsWarning, stacklevel=2)
    df = pd.DataFrame(rows)
    if df.empty:
        df = pd.DataFrame(columns=list(COLUMNS))
    df.attrs["read_problems"] = problems
    return df
