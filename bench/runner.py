"""Run spec -> records: one job (point, model, seed; ``bench.plan.jobs``) at a time, every failure a record,
resumable. ``Runner.run_job`` is the one path of every executor (local, DDP ranks, Ray tasks):

    for seed: for model:                                   (plan.jobs order)
        accuracy (train clip)  -> params, flops, latency, memory (train clip)
        params, flops, latency, memory (deployment/cost clip)
    latency of every model of the (point, seed): interleaved rounds (Runner.run_jobs)

Each measurement is appended to the store as soon as it exists; a key already recorded (with any status
but ``error``) is skipped, which is what makes ``--resume`` work. The runner never prints: it reports
through ``progress(event, info)``.

Under DDP (``ddp=`` a ``bench.distributed.DDPContext``) every rank trains every model first; then the process
group is torn down and rank 0 alone measures the costs, so no cost is ever measured under DDP. Only rank 0
touches the store.
"""
from __future__ import annotations

import json
import time
import traceback
from dataclasses import dataclass
from typing import Any, Callable

import torch

from fusion_models import build_model, model_info
from fusion_models.clip import ClipSpec

from . import measurements
from .config import RunSpec
from .measure import LatencySettings, is_oom, measure_matmul_peak
from .measure.rounds import LatencyJob, measure_rounds, worst_quality
from .plan import Job, jobs
from .results import PROVENANCE_KEYS, RunStore, RunSummary, StoreWriteError, environment

EVAL_BATCH = 32  # the smallest batch the stopping and validation splits are evaluated in (Runner._loaders)

Progress = Callable[[str, dict], None]


def _error_message(exc: BaseException) -> str:
    tb = traceback.extract_tb(exc.__traceback__)
    where = f" ({tb[-1].filename.rsplit('/', 1)[-1]}:{tb[-1].lineno})" if tb else ""
    return f"{type(exc).__name__}: {exc}{where}"[:2000]


class Runner:
    """Executes the jobs of one or more ``RunSpec`` points into one ``RunStore``."""

    def __init__(self, store: RunStore, *, progress: Progress | None = None, ddp: Any = None) -> None:
        self.store = store
        self.emit = progress or (lambda event, info: None)
        self.ddp = ddp
        self.writes = ddp is None or ddp.is_main  # under DDP only rank 0 reads or writes the store
        self.done = store.done_keys() if self.writes else set()
        if ddp is not None:
            self.done = ddp.broadcast(self.done)  # every rank skips the same keys, or collectives would hang
        self.summary = RunSummary(run_id=store.run_id, path=str(store.path), wall_time_s=0.0)
        self._env: dict[str, Any] | None = None
        self._latency_pending: list[dict[str, Any]] = []  # latency jobs of this (point, seed), run interleaved
        self._recent: list[dict[str, Any]] = []  # the records of the current run_job / latency rounds
        self._last: _Point | None = None  # the current point's shared parts
        self._peak: float | None = None
        self._flops: dict[tuple, float] = {
            (r.get("point_id"), r.get("model"), r.get("scale")): r["gmacs"]
            for r in (store.records() if self.writes else [])
            if r.get("measurement") == "flops" and r.get("status") == "ok" and r.get("gmacs") is not None
        }

    # ------------------------------------------------------------------------------------------ api
    def run(self, points: list[RunSpec]) -> RunSummary:
        """Measure every point; returns the summary (also on KeyboardInterrupt, after re-raising)."""
        t0 = time.perf_counter()
        try:
            if self.ddp is not None:
                self._run_ddp(points)
            else:
                self._run_points(points)
        finally:
            self.summary.wall_time_s = time.perf_counter() - t0
        return self.summary

    def run_jobs(self, batch: list[Job], *, accuracy: bool = True, costs: bool = True) -> list[dict[str, Any]]:
        """``run_job`` for each job in turn; the latencies of one (point, seed) are measured together, in
        interleaved rounds, once its last job is done. Returns the records written."""
        out: list[dict[str, Any]] = []
        for i, job in enumerate(batch):
            out += self.run_job(job, accuracy=accuracy, costs=costs)
            after = batch[i + 1] if i + 1 < len(batch) else None
            if after is None or after.spec is not job.spec or after.seed != job.seed:
                out += self._latency_rounds(job)
        return out

    def run_job(self, job: Job, *, accuracy: bool = True, costs: bool = True) -> list[dict[str, Any]]:
        """One (point, model, seed), the path of every executor: accuracy (training), then the costs at the
        training and the deployment clip. Returns the records written; its latencies wait for ``run_jobs``'s
        rounds. ``accuracy=False`` / ``costs=False``: one of the two DDP passes."""
        self._recent = []
        point = self._point(job)
        info = model_info(job.model)
        meta = {"model": job.model, "family": info.family, "fusion_point": info.fusion_point,
                "order_aware": info.order_aware, "needs_flow": info.needs_flow, "seed": job.seed, **point.meta}
        if accuracy:  # (a DDP cost pass re-visits the models without moving the progress bar)
            self.emit("model_start", {"model": job.model, "seed": job.seed, "point_id": job.point_id})
        model = None
        if "accuracy" in job.spec.measurements and accuracy:
            model = self._accuracy(job, meta, point)
        if costs:
            spec = job.spec
            self._costs(job, meta, "train", spec.clip, spec.backbone, point.num_classes, model)
            if spec.cost.enabled:
                self._costs(job, meta, "cost", spec.cost.clip, spec.cost.backbone, point.num_classes, None)
        if accuracy or not costs:
            self.emit("model_end", {"model": job.model, "seed": job.seed})
        return self._recent

    # ------------------------------------------------------------------------------------ internals
    def _run_points(self, points: list[RunSpec], **phase: bool) -> None:
        for i, spec in enumerate(points):
            self.emit("point_start", {"index": i, "points": len(points), "point": dict(spec.point)})
            self.run_jobs(jobs([spec]), **phase)

    def _run_ddp(self, points: list[RunSpec]) -> None:
        from .distributed import per_rank_batch

        for spec in points:
            per_rank_batch(spec.train.batch_size, self.ddp.world_size)
        self._run_points(points, costs=False)
        self.ddp.close()
        if self.writes:
            self.run_jobs(jobs(points), accuracy=False)

    def _environment(self, device: str) -> dict[str, Any]:
        if self._env is None or self._env.get("device") != device:
            self._env = environment(device)
        return self._env

    def _matmul_peak(self, device: str) -> float | None:
        if self._peak is None:
            try:
                self._peak = float(measure_matmul_peak(device=device))
            except Exception:  # noqa: BLE001 - the peak is context, never a reason to fail a run
                self._peak = float("nan")
            self.store.update_meta(matmul_peak_gflops_s=self._peak)
        return self._peak

    def _point(self, job: Job) -> _Point:
        """What the jobs of one point share (threads, validation split, record fields), made at its first job."""
        from .data import build_dataset

        if self._last is not None and self._last.spec is job.spec:
            return self._last
        spec = job.spec
        if spec.threads:
            torch.set_num_threads(spec.threads)
        env = self._environment(job.device)
        val_ds = build_dataset(spec.dataset, spec.clip, split="val", seed=0)
        meta = {
            "point_id": job.point_id,
            "point": json.dumps(dict(spec.point), sort_keys=True),
            "dataset": spec.dataset.name,
            "num_classes": val_ds.num_classes,
            "noise": getattr(spec.dataset, "noise", None),
            "camera": getattr(spec.dataset, "camera", None),
            "profile": spec.profile,
            "config": json.dumps(spec.to_dict(), sort_keys=True),
            **{k: env.get(k) for k in PROVENANCE_KEYS},
        }
        for knob, value in spec.point:
            meta.setdefault(knob, value)
        self._last = _Point(spec, val_ds, meta)
        return self._last

    def _record(self, key: str, record: dict[str, Any]) -> dict[str, Any]:
        rec = self.store.append({"key": key, **record}) if self.writes else {"key": key, **record}
        if rec["status"] != "error":  # an error is retried by a resume; everything else is final
            self.done.add(key)
        self.summary.add(rec)
        self._recent.append(rec)
        if rec.get("measurement") == "flops" and rec["status"] == "ok":
            self._flops[(rec.get("point_id"), rec.get("model"), rec.get("scale"))] = rec.get("gmacs")
        self.emit("record", rec)
        return rec

    def _attempt(self, key: str, base: dict[str, Any], fn: Callable[[], dict[str, Any]]) -> dict[str, Any] | None:
        """Run one measurement; its result or its failure becomes a record. Skips keys already done."""
        if key in self.done:
            self.summary.skipped += 1
            self.emit("skip", {"key": key})
            return None
        self.emit("measure_start", {"key": key, "measurement": base.get("measurement"), "model": base.get("model"),
                                    "scale": base.get("scale")})
        try:
            values = fn()
            status = values.pop("status", "ok")
            return self._record(key, {**base, "status": status, "error": values.pop("error", None), **values})
        except (KeyboardInterrupt, StoreWriteError):  # a store that cannot be written ends the run (resumable)
            raise
        except BaseException as exc:  # noqa: BLE001 - one broken model never kills a sweep
            status = "oom" if is_oom(exc) else "error"
            if torch.cuda.is_available():
                torch.cuda.empty_cache()
            return self._record(key, {**base, "status": status, "error": _error_message(exc)})

    def _build(self, name: str, clip: ClipSpec, backbone: str, spec: RunSpec, num_classes: int, seed: int):
        torch.manual_seed(seed)  # identical init stream for every model and rerun
        # the run's initial weights belong to its training backbone; a deployment backbone (costs) starts fresh
        init = ({"pretrained": spec.pretrained, "weights": self._path(spec.weights, spec, name, seed)}
                if backbone == spec.backbone else {})
        return build_model(name, clip=clip, num_classes=num_classes, backbone=backbone, width=spec.width, **init)

    def _path(self, template: str | None, spec: RunSpec, model: str, seed: int) -> str | None:
        """A ``weights`` / ``save_weights`` path of this job, placeholders filled in (``bench.weights``)."""
        from .weights import resolve

        if template is None:
            return None
        if "{run}" in template and not isinstance(self.store, RunStore):
            raise ValueError(f"{template}: {{run}} is the run directory, which a Ray task has none of; run the "
                             "points that write or read weights in it with the local executor")
        return resolve(template, run=self.store.path, point=spec.config_hash(), model=model, seed=seed)

    def _accuracy(self, job: Job, meta: dict[str, Any], point: _Point) -> torch.nn.Module | None:
        """Train and evaluate the job's model into its accuracy record; returns the trained model (None when the
        record exists already or training failed: the costs then build a fresh one)."""
        from .data import ceiling_for

        spec = job.spec
        ceiling = ceiling_for(spec.dataset.name, meta["family"]) or {}
        trained = None

        def fn() -> dict[str, Any]:
            from .train import train_and_evaluate

            nonlocal trained
            model = self._build(job.model, spec.clip, spec.backbone, spec, point.num_classes, job.seed)
            split = _training_split(spec, job.seed)
            loaders = self._loaders(spec, job.seed, split)
            res = train_and_evaluate(
                model, loaders["train"], loaders["val"], spec=spec.train, seed=job.seed, device=job.device,
                class_names=getattr(point.val_ds, "class_names", None),
                class_attributes=getattr(point.val_ds, "class_attributes", None),
                progress=lambda ev, info: self.emit(f"train_{ev}", {"model": job.model, **info}), ddp=self.ddp,
                stop_loader=loaders["stop"], ceiling=ceiling.get("top1"),
            )
            trained = model
            saved = self._save_encoder(model, job) if spec.save_weights and res.status == "ok" else None
            return {**_training_values(spec, res, split, ceiling), **_data_facts(loaders["train"], loaders["val"]),
                    **(res.flow_cache or {}), **{f"ceiling_{k}": v for k, v in ceiling.items()},
                    **_eval_values(res.eval), **({"saved_weights": saved} if saved else {})}

        base = {**meta, "measurement": "accuracy", "scale": "train", "frames": spec.clip.frames,
                "height": spec.clip.height, "width": spec.clip.width, "backbone": spec.backbone,
                "batch_size": spec.train.batch_size, "ddp_world_size": self.ddp.world_size if self.ddp else 1}
        self._attempt(job.key("accuracy", "train", spec.train.batch_size), base, fn)
        return trained

    def _save_encoder(self, model: torch.nn.Module, job: Job) -> str:
        """A pre-training's product: the trained encoder's state dict at ``spec.save_weights``, written atomically
        before the accuracy record (so a recorded pre-training always has its file). Under DDP every rank holds
        the same weights and writes its own copy."""
        from fusion_models import backbone_state

        from .weights import save_atomic

        path = self._path(job.spec.save_weights, job.spec, job.model, job.seed)
        return str(save_atomic(backbone_state(model), path))

    def _loaders(self, spec: RunSpec, seed: int, split: tuple[Any, list]) -> dict[str, Any]:
        """Training, stopping (None at a fixed length) and validation loaders; under DDP each rank's shard."""
        from .data import make_loader

        fit_ds, stop_ds = split
        tr = spec.train
        # Evaluation batches of the training batch, at least 32 clips: at 256 a per-frame model's activations
        # (2,048 frames of 16x32x32 floats, 134 MB a layer) leave the cache and inference ran 2.7x slower
        # (pool_avg 1,243 vs 2,921 clips/s at 32, 2 threads; docs/speed.md).
        eval_batch = max(tr.batch_size, EVAL_BATCH)
        loaders = {
            "train": make_loader(spec.dataset, spec.clip, split="train", seed=seed, dataset=fit_ds,
                                 batch_size=tr.batch_size, num_workers=tr.num_workers),
            "stop": None if tr.fixed_length else make_loader(spec.dataset, spec.clip, split="train", seed=seed,
                                                             dataset=stop_ds, batch_size=eval_batch, shuffle=False,
                                                             num_workers=tr.num_workers),
            "val": make_loader(spec.dataset, spec.clip, split="val", seed=seed, batch_size=eval_batch, shuffle=False,
                               num_workers=tr.num_workers,
                               video_index=not spec.dataset.is_synthetic),  # video-level accuracy
        }
        if self.ddp is not None:  # disjoint slices of the same global batches; eval shards gathered
            loaders = {k: None if ld is None else self.ddp.shard(ld, drop_short=k == "train")
                       for k, ld in loaders.items()}
        return loaders

    def _costs(self, job: Job, meta: dict[str, Any], scale: str, clip: ClipSpec, backbone: str, num_classes: int,
               model: torch.nn.Module | None) -> None:
        """Every measurement of the table (bench/measurements.py) but the trained one, at this clip scale."""
        spec = job.spec
        wanted = [m for m in measurements.measurements()
                  if m.how != "train" and m.name in spec.measurements and scale in m.scales]
        planned = [(m, b) for m in wanted for b in m.batches(spec, scale)]
        if not planned:
            return
        keys = {(m.name, b): job.key(m.name, scale, b) for m, b in planned}
        if all(k in self.done for k in keys.values()):  # nothing to do: don't even build the model
            self.summary.skipped += len(keys)
            return
        built: dict[str, Any] = {"model": model}

        def get_model():
            if built["model"] is None:
                built["model"] = self._build(job.model, clip, backbone, spec, num_classes, job.seed)
            return built["model"].to(job.device).eval()

        base = {**meta, "frames": clip.frames, "height": clip.height, "width": clip.width, "backbone": backbone,
                "scale": scale, "measured_under_ddp": False}  # costs: one process, after any DDP group
        for m, b in planned:
            key, rec = keys[(m.name, b)], {**base, "measurement": m.name, "batch_size": b}
            if m.how == "rounds":  # deferred: measured with the other models' latencies, round by round
                if key in self.done:
                    self.summary.skipped += 1
                    self.emit("skip", {"key": key})
                else:
                    self._latency_pending.append({"key": key, "base": rec, "get_model": get_model, "clip": clip,
                                                  "batch": b})
                continue
            ctx = measurements.Context(spec=spec, scale=scale, clip=clip, batch=b, device=job.device, model=get_model)
            self._attempt(key, rec, lambda m=m, ctx=ctx: m.run(ctx))

    def _latency_rounds(self, job: Job) -> list[dict[str, Any]]:
        """Measure the pending latencies (of ``job``'s point and seed) in interleaved rounds
        (``bench.measure.rounds``), then record each; returns the records."""
        pending, self._latency_pending = self._latency_pending, []
        self._recent = []
        if not pending:
            return self._recent
        m, device = job.spec.measure, job.device
        settings = LatencySettings(warmup_s=m.warmup_s, min_samples=m.min_samples, max_time_s=m.max_time_s,
                                   amp=m.amp, channels_last=m.channels_last, compile=m.compile)
        timed = []
        for i, p in enumerate(pending):
            x = p["clip"].dummy(p["batch"], device=device)
            timed.append(LatencyJob(str(i), p["get_model"], x, settings, device))
            if p["base"].get("needs_flow"):  # the flow stage alone, in the same rounds as its model
                timed.append(LatencyJob(f"{i}:flow", lambda g=p["get_model"]: getattr(g(), "flow", None), x,
                                        settings, device))
        names = {str(i): p["base"]["model"] for i, p in enumerate(pending)}
        results = {r.name: r for r in measure_rounds(timed, progress=lambda ev, info: self.emit(
            f"latency_{ev}", {**info, "model": names.get(info["job"].split(":")[0], info["job"])}))}
        for i, p in enumerate(pending):
            self._attempt(p["key"], p["base"], lambda i=i, p=p: self._latency(
                results[str(i)], results.get(f"{i}:flow"), p["batch"], device, p["base"]))
        return self._recent

    def _latency(self, res, flow_res, batch: int, device: str, rec: dict[str, Any]) -> dict[str, Any]:
        if res.error is not None:
            raise res.error
        out = res.as_dict()
        p50 = out.get("latency_ms_p50")
        if flow_res is not None and flow_res.latency is not None:
            out["flow_latency_ms_p50"] = flow_res.latency.latency_ms_p50
            out["flow_share"] = flow_res.latency.latency_ms_p50 / p50 if p50 else None
            out["flow_timing_quality"] = flow_res.timing_quality
            out["timing_quality"], out["timing_reason"] = worst_quality(
                (res.timing_quality, res.timing_reason), (flow_res.timing_quality, flow_res.timing_reason, "flow stage"))
        elif flow_res is not None and flow_res.error is not None:
            raise flow_res.error
        gmacs = self._flops.get((rec["point_id"], rec["model"], rec["scale"]))
        peak = self._matmul_peak(device)
        out["matmul_peak_gflops_s"] = peak
        if gmacs is not None and p50:
            achieved = 2.0 * gmacs * batch / (p50 / 1e3)
            out["achieved_gflops_s"] = achieved
            out["peak_fraction"] = achieved / peak if peak and peak == peak else None
        return out


@dataclass
class _Point:
    """The parts of one point its jobs share (``Runner._point``)."""

    spec: RunSpec
    val_ds: Any
    meta: dict[str, Any]  # the record fields of the point: point_id, dataset, config, provenance, knobs

    @property
    def num_classes(self) -> int:
        return self.val_ds.num_classes


def _training_split(spec: RunSpec, seed: int) -> tuple[Any, list]:
    """(fit, stopping) datasets. The stopping split comes out of the training data (never the reported split),
    the same carve per seed; a fixed length (--epochs) stops on nothing and trains on the whole training split."""
    from .data import build_dataset, carve_stopping_split

    train_ds = build_dataset(spec.dataset, spec.clip, split="train", seed=seed)
    if spec.train.fixed_length:
        return train_ds, []
    return carve_stopping_split(train_ds, spec.train.stop_fraction, seed)


def _training_values(spec: RunSpec, res: Any, split: tuple[Any, list], ceiling: dict[str, float]) -> dict[str, Any]:
    """The accuracy record's protocol, training and sample-efficiency fields (``res``: a ``TrainResult``)."""
    from .measure import sample_efficiency

    tr = spec.train
    budget = res.steps if tr.fixed_length else tr.budget_steps  # the AUC's common range
    return {
        "status": res.status, "error": res.error, "epochs": tr.epochs, "epochs_run": res.epochs_run,
        "train_time_s": res.train_time_s, "final_train_loss": res.final_train_loss,
        "history": res.history, "lr": tr.lr,
        "train_size": getattr(spec.dataset, "train_size", None),
        "stop_reason": res.stop_reason, "converged": res.converged, "steps": res.steps,
        "samples_seen": res.samples, "selected_step": res.selected_step,
        "fit_n": len(split[0]), "stop_n": len(split[1]), "budget_steps": tr.budget_steps,
        "patience": tr.patience, "eval_every": tr.eval_every, "min_delta": tr.min_delta,
        "train_step_gmacs": res.train_step_gmacs,
        "train_gmacs": (res.train_gmacs_per_sample * res.samples if res.train_gmacs_per_sample is not None else None),
        "learning_curve": json.dumps(res.curve, separators=(",", ":")),
        **sample_efficiency(res.curve, ceiling.get("top1"), budget),
    }


def _eval_values(ev: Any) -> dict[str, Any]:
    """The accuracy record's validation fields (``ev``: the ``EvalResult``, None when training failed)."""
    from .measure import wilson_interval

    if ev is None:
        return {}
    lo, hi = wilson_interval(round(ev.acc_top1 * ev.n), ev.n)
    return {
        "acc_top1": ev.acc_top1, "val_loss": ev.val_loss, "val_n": ev.n,
        "acc_top1_lo": lo, "acc_top1_hi": hi, "val_correct": ev.correct,
        "per_class_acc": ev.per_class_acc, "video_acc_top1": ev.video_acc_top1,
        **{f"acc_{k}": v for k, v in ev.attribute_acc.items()},
    }


def _data_facts(*loaders) -> dict[str, Any]:
    """Decoder used and videos skipped (with reasons) by the loaders' datasets, for the accuracy record."""
    facts = [ld.dataset.describe() for ld in loaders if hasattr(getattr(ld, "dataset", None), "describe")]
    skipped = [item for f in facts for item in f.get("skipped_items", [])]
    return {
        "decoder": next((f["decoder"] for f in facts if f.get("decoder")), None),
        "skipped_videos": len(skipped),
        "skipped_video_list": json.dumps(skipped[:100]),  # the first 100 (path, reason) pairs
    }
