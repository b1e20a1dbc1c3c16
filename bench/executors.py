"""Where a sweep runs: in this process (``bench.runner.Runner``, the local executor) or as Ray tasks.

    driver                                          Ray workers (this machine, or a cluster)
    plan.jobs(points) --submit-->  task(job, done keys) = Runner.run_jobs([job]) over an in-memory store
    RunStore.append  <--records (de-duplicated by key)--  returned records
    a task whose worker died is re-run by Ray (max_retries); what it returned once is written once

Only the driver writes the store, so a worker that dies loses nothing already written, and a resume skips the
keys already recorded exactly as a local resume does. ``RayRunner`` has the ``Runner`` interface (``emit``,
``summary``, ``run(points)``) so the CLI drives either the same way.
"""
from __future__ import annotations

import logging
import os
import socket
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from .config import RunSpec
from .plan import Job, jobs
from .results import STATUSES, RunStore, RunSummary
from .runner import Runner

Progress = Callable[[str, dict], None]

RAY_MISSING = "ray is not installed: pip install 'fusionbench[ray]'"


class ExecutorUnavailable(ValueError):
    """The requested executor cannot run here (Ray missing, cluster unreachable)."""


def _import_ray():
    try:
        import ray
    except ImportError:
        raise ExecutorUnavailable(RAY_MISSING) from None
    return ray


def _check_reachable(address: str, timeout_s: float) -> None:
    """A TCP connect to ``HOST:PORT`` (or ``ray://HOST:PORT``) with a short timeout: ray.init would retry
    for a long time before failing on a wrong address."""
    hostport = address.split("://", 1)[-1]
    host, _, port = hostport.rpartition(":")
    if not host or not port.isdigit():
        raise ExecutorUnavailable(f"--address must be auto or HOST:PORT, got {address!r}")
    try:
        socket.create_connection((host, int(port)), timeout=timeout_s).close()
    except OSError as exc:
        raise ExecutorUnavailable(f"cannot reach a Ray cluster at {address}: {exc.strerror or exc}") from None


@dataclass
class RayConnection:
    """A live ``ray.init``: a local instance this process started, or a cluster it joined."""

    address: str | None
    started_local: bool

    def resources(self) -> dict[str, float]:
        return dict(_import_ray().cluster_resources())

    def shutdown(self) -> None:
        ray = _import_ray()
        if ray.is_initialized():
            ray.shutdown()


def connect_ray(address: str | None = None, *, num_cpus: int | None = None, timeout_s: float = 5.0) -> RayConnection:
    """Start a small local Ray instance (``address=None``) or join a cluster (``auto`` or ``HOST:PORT``).

    Raises ``ExecutorUnavailable`` (a ``ValueError``) with one line when Ray is missing or unreachable."""
    ray = _import_ray()
    if ray.is_initialized():
        return RayConnection(address=address, started_local=False)
    kw: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False, "logging_level": logging.ERROR,
                          "configure_logging": True}
    if address in (None, "", "local"):
        kw["num_cpus"] = num_cpus or os.cpu_count() or 1
        started = True
    else:
        if address != "auto":
            _check_reachable(address, timeout_s)
        kw["address"] = address
        started = False
    try:
        ray.init(**kw)
    except (ConnectionError, RuntimeError, TimeoutError, ValueError) as exc:
        where = "no running Ray cluster found (start one with `ray start --head`)" if address == "auto" else \
            f"cannot connect to Ray at {address}"
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ExecutorUnavailable(f"{where}: {first}"[:300]) from None
    return RayConnection(address=address, started_local=started)


# ------------------------------------------------------------------------------------------ the task
class _TaskStore:
    """What a ``Runner`` inside a Ray task writes to: nothing is kept (the driver writes what the task returns)."""

    def __init__(self, run_id: str, done: set[str]) -> None:
        self.run_id, self._done = run_id, set(done)
        self.path = Path("<ray task>")
        self.meta: dict[str, Any] = {}

    def done_keys(self) -> set[str]:
        return set(self._done)

    def records(self) -> list[dict[str, Any]]:
        return []

    def append(self, record: dict[str, Any]) -> dict[str, Any]:
        if record.get("status") not in STATUSES:
            raise ValueError(f"record status must be one of {STATUSES}, got {record.get('status')!r}")
        return dict(record)

    def update_meta(self, **changes: Any) -> None:
        self.meta.update(changes)


def run_task(job: Job, run_id: str, done: frozenset[str], threads: int | None) -> dict[str, Any]:
    """One job: ``Runner.run_jobs`` (the local path) over an in-memory store; returns its records.

    Runs inside a Ray worker (and is a plain function, so tests can call it directly)."""
    import torch

    from .plugins import load_plugins

    load_plugins()  # a Ray worker is a fresh process: the user's plug-ins ($FUSIONBENCH_PLUGINS) again
    if threads:
        torch.set_num_threads(threads)
    store = _TaskStore(run_id, set(done))
    runner = Runner(store)  # type: ignore[arg-type]
    records = runner.run_jobs([job])
    return {"records": records, "skipped": runner.summary.skipped, "meta": store.meta, "pid": os.getpid()}


# ----------------------------------------------------------------------------------------- the driver
class RayRunner:
    """Executes run points as Ray tasks, one per (point, model, seed); the driver alone writes ``store``."""

    def __init__(self, store: RunStore, connection: RayConnection, *, progress: Progress | None = None,
                 cpus_per_task: int = 1, max_retries: int = 3) -> None:
        self.store, self.connection = store, connection
        self.emit = progress or (lambda event, info: None)
        self.cpus_per_task, self.max_retries = cpus_per_task, max_retries
        self.done = store.done_keys()
        self.written: set[str] = set()
        self.summary = RunSummary(run_id=store.run_id, path=str(store.path), wall_time_s=0.0)

    def _options(self, spec: RunSpec) -> dict[str, Any]:
        if spec.device.startswith("cuda"):
            return {"num_gpus": 1, "num_cpus": 1}
        return {"num_cpus": spec.threads or self.cpus_per_task}

    def run(self, points: list[RunSpec]) -> RunSummary:
        """Submit every (point, model, seed), write records as tasks finish; returns the summary."""
        ray = _import_ray()
        task = ray.remote(run_task)
        t0 = time.perf_counter()
        pending: dict[Any, Job] = {}
        try:
            done = frozenset(self.done)
            for i, spec in enumerate(points):
                self.emit("point_start", {"index": i, "points": len(points), "point": dict(spec.point)})
                for job in jobs([spec]):
                    ref = task.options(**self._options(spec), max_retries=self.max_retries,
                                       retry_exceptions=False).remote(
                        job, self.store.run_id, done, spec.threads or self.cpus_per_task)
                    pending[ref] = job
            while pending:
                ready, _ = ray.wait(list(pending), num_returns=1)
                for ref in ready:
                    job = pending.pop(ref)
                    name, seed = job.model, job.seed
                    self.emit("model_start", {"model": name, "seed": seed, "point_id": job.point_id})
                    try:
                        out = ray.get(ref)
                    except ray.exceptions.RayError as exc:  # retries exhausted: the failure is a record
                        self._append(self._task_error(job, exc))
                    else:
                        self.summary.skipped += out["skipped"]
                        if out["meta"] and not self.store.read_meta().get("matmul_peak_gflops_s"):
                            self.store.update_meta(**out["meta"])
                        for rec in out["records"]:
                            self._append(rec)
                    self.emit("model_end", {"model": name, "seed": seed})
        except KeyboardInterrupt:
            for ref in pending:
                ray.cancel(ref, force=True)
            raise
        finally:
            self.summary.wall_time_s = time.perf_counter() - t0
        return self.summary

    def _append(self, record: dict[str, Any]) -> None:
        key = record.get("key")
        if key in self.written or key in self.done:  # a task re-ran a key already written: never appended twice
            return
        rec = self.store.append(record)
        self.written.add(key)
        if rec["status"] != "error":
            self.done.add(key)
        self.summary.add(rec)
        self.emit("record", rec)

    def _task_error(self, job: Job, exc: BaseException) -> dict[str, Any]:
        msg = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        return {"key": job.key("task"), "model": job.model, "seed": job.seed, "point_id": job.point_id,
                "measurement": "task", "scale": "-", "status": "error", "error": f"{type(exc).__name__}: {msg}"[:2000]}


__all__ = ["ExecutorUnavailable", "RAY_MISSING", "RayConnection", "RayRunner", "connect_ray", "run_task"]
