"""Run spec -> records: one model at a time, every failure a record, resumable.

    for seed: for model:
        accuracy (train clip)  -> params, flops, latency, memory (train clip)
        params, flops, latency, memory (deployment/cost clip)

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
from typing import Any, Callable

import torch

from fusion_models import build_model, model_info
from fusion_models.clip import ClipSpec

from . import measurements
from .allocator import tune_malloc
from .config import RunSpec
from .measure import is_oom, measure_matmul_peak, resolve_device
from .measure.rounds import LatencyJob, measure_rounds, worst_quality
from .results import PROVENANCE_KEYS, RunStore, RunSummary, StoreWriteError, environment, record_key

Progress = Callable[[str, dict], None]


def _error_message(exc: BaseException) -> str:
    tb = traceback.extract_tb(exc.__traceback__)
    where = f" ({tb[-1].filename.rsplit('/', 1)[-1]}:{tb[-1].lineno})" if tb else ""
    return f"{type(exc).__name__}: {exc}{where}"[:2000]


class Runner:
    """Executes one or more ``RunSpec`` points into one ``RunStore``."""

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
                return self.summary
            for i, spec in enumerate(points):
                self.emit("point_start", {"index": i, "points": len(points), "point": dict(spec.point)})
                self._run_point(spec)
        finally:
            self.summary.wall_time_s = time.perf_counter() - t0
        return self.summary

    def _run_ddp(self, points: list[RunSpec]) -> None:
        from .distributed import per_rank_batch

        for spec in points:
            per_rank_batch(spec.train.batch_size, self.ddp.world_size)
        for i, spec in enumerate(points):
            self.emit("point_start", {"index": i, "points": len(points), "point": dict(spec.point)})
            self._run_point(spec, costs=False)
        self.ddp.close()
        if self.writes:
            for spec in points:
                self._run_point(spec, accuracy=False)

    # ------------------------------------------------------------------------------------ internals
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

    def _run_point(self, spec: RunSpec, *, accuracy: bool = True, costs: bool = True) -> None:
        from .data import build_dataset, ceiling_for

        device = resolve_device(spec.device)
        tune_malloc()  # before the first training step (exact; bench/allocator.py)
        if spec.threads:
            torch.set_num_threads(spec.threads)
        env = self._environment(device)
        point_id = spec.config_hash()
        val_ds = build_dataset(spec.dataset, spec.clip, split="val", seed=0)
        num_classes = val_ds.num_classes
        base_cfg = {
            "point_id": point_id,
            "point": json.dumps(dict(spec.point), sort_keys=True),
            "dataset": spec.dataset.name,
            "num_classes": num_classes,
            "noise": getattr(spec.dataset, "noise", None),
            "camera": getattr(spec.dataset, "camera", None),
            "profile": spec.profile,
            "config": json.dumps(spec.to_dict(), sort_keys=True),
            **{k: env.get(k) for k in PROVENANCE_KEYS},
        }
        for knob, value in spec.point:
            base_cfg.setdefault(knob, value)
        for seed in spec.seeds:
            for name in spec.models:
                info = model_info(name)
                meta = {
                    "model": name, "family": info.family, "fusion_point": info.fusion_point,
                    "order_aware": info.order_aware, "needs_flow": info.needs_flow, "seed": seed, **base_cfg,
                }
                if accuracy:  # (a DDP cost pass re-visits the models without moving the progress bar)
                    self.emit("model_start", {"model": name, "seed": seed, "point_id": point_id})
                model = None
                if "accuracy" in spec.measurements and accuracy:
                    model = self._accuracy(spec, name, meta, num_classes, val_ds, device, seed,
                                           ceiling_for(spec.dataset.name, info.family))
                if not costs:
                    self.emit("model_end", {"model": name, "seed": seed})
                    continue
                train_clip_meta = {**meta, "frames": spec.clip.frames, "height": spec.clip.height,
                                   "width": spec.clip.width, "backbone": spec.backbone}
                self._costs(spec, name, train_clip_meta, "train", spec.clip, spec.backbone, num_classes, device,
                            seed, model)
                if spec.cost.enabled:
                    c = spec.cost.clip
                    cost_meta = {**meta, "frames": c.frames, "height": c.height, "width": c.width,
                                 "backbone": spec.cost.backbone}
                    self._costs(spec, name, cost_meta, "cost", c, spec.cost.backbone, num_classes, device, seed,
                                None)
                if accuracy:
                    self.emit("model_end", {"model": name, "seed": seed})
            self._latency_rounds(spec, device)  # every model's latency, in interleaved rounds

    def _record(self, key: str, record: dict[str, Any]) -> dict[str, Any]:
        rec = self.store.append({"key": key, **record}) if self.writes else {"key": key, **record}
        if rec["status"] != "error":  # an error is retried by a resume; everything else is final
            self.done.add(key)
        self.summary.add(rec)
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
        init = {"pretrained": spec.pretrained, "weights": spec.weights} if backbone == spec.backbone else {}
        return build_model(name, clip=clip, num_classes=num_classes, backbone=backbone, width=spec.width, **init)

    def _accuracy(self, spec, name, meta, num_classes, val_ds, device, seed, ceiling) -> torch.nn.Module | None:
        from .data import make_loader
        from .train import train_and_evaluate

        key = record_key(meta["point_id"], name, seed, "accuracy", "train", spec.train.batch_size)
        holder: dict[str, Any] = {}

        def fn() -> dict[str, Any]:
            from .data import build_dataset, carve_stopping_split
            from .measure import sample_efficiency, wilson_interval

            model = self._build(name, spec.clip, spec.backbone, spec, num_classes, seed)
            # The stopping split comes out of the training data (never the reported split), same carve per seed.
            # Fixed length (--epochs) stops on nothing: it trains on the whole training split, as it always did.
            train_ds = build_dataset(spec.dataset, spec.clip, split="train", seed=seed)
            fixed = spec.train.fixed_length
            fit_ds, stop_ds = (train_ds, []) if fixed else carve_stopping_split(train_ds, spec.train.stop_fraction, seed)
            train_loader = make_loader(spec.dataset, spec.clip, split="train", seed=seed, dataset=fit_ds,
                                       batch_size=spec.train.batch_size, num_workers=spec.train.num_workers)
            stop_loader = None if fixed else make_loader(spec.dataset, spec.clip, split="train", seed=seed,
                                                         dataset=stop_ds, batch_size=max(spec.train.batch_size, 256),
                                                         shuffle=False, num_workers=spec.train.num_workers)
            val_loader = make_loader(spec.dataset, spec.clip, split="val", seed=seed,
                                     batch_size=max(spec.train.batch_size, 256), shuffle=False,
                                     num_workers=spec.train.num_workers,
                                     video_index=not spec.dataset.is_synthetic)  # video-level accuracy
            if self.ddp is not None:  # disjoint slices of the same global batches; eval shards gathered
                train_loader = self.ddp.shard(train_loader, drop_short=True)
                stop_loader = self.ddp.shard(stop_loader, drop_short=False) if stop_loader is not None else None
                val_loader = self.ddp.shard(val_loader, drop_short=False)
            top1_ceiling = (ceiling or {}).get("top1")
            res = train_and_evaluate(
                model, train_loader, val_loader, spec=spec.train, seed=seed, device=device,
                class_names=getattr(val_ds, "class_names", None),
                class_attributes=getattr(val_ds, "class_attributes", None),
                progress=lambda ev, info: self.emit(f"train_{ev}", {"model": name, **info}), ddp=self.ddp,
                stop_loader=stop_loader, ceiling=top1_ceiling,
            )
            holder["model"] = model
            budget = res.steps if spec.train.fixed_length else spec.train.budget_steps  # the AUC's common range
            out: dict[str, Any] = {
                "status": res.status, "error": res.error, "epochs": spec.train.epochs, "epochs_run": res.epochs_run,
                "train_time_s": res.train_time_s, "final_train_loss": res.final_train_loss,
                "history": res.history, "lr": spec.train.lr,
                "train_size": getattr(spec.dataset, "train_size", None),
                "stop_reason": res.stop_reason, "converged": res.converged, "steps": res.steps,
                "samples_seen": res.samples, "selected_step": res.selected_step,
                "fit_n": len(fit_ds), "stop_n": len(stop_ds), "budget_steps": spec.train.budget_steps,
                "patience": spec.train.patience, "eval_every": spec.train.eval_every,
                "min_delta": spec.train.min_delta,
                "train_step_gmacs": res.train_step_gmacs,
                "train_gmacs": (res.train_gmacs_per_sample * res.samples
                                if res.train_gmacs_per_sample is not None else None),
                "learning_curve": json.dumps(res.curve, separators=(",", ":")),
                **sample_efficiency(res.curve, top1_ceiling, budget),
                **_data_facts(train_loader, val_loader),
                **(res.flow_cache or {}),
            }
            for k, v in (ceiling or {}).items():
                out[f"ceiling_{k}"] = v
            if res.eval is not None:
                k_right = round(res.eval.acc_top1 * res.eval.n)
                lo, hi = wilson_interval(k_right, res.eval.n)
                out.update({
                    "acc_top1": res.eval.acc_top1, "val_loss": res.eval.val_loss, "val_n": res.eval.n,
                    "acc_top1_lo": lo, "acc_top1_hi": hi, "val_correct": res.eval.correct,
                    "per_class_acc": res.eval.per_class_acc, "video_acc_top1": res.eval.video_acc_top1,
                    **{f"acc_{k}": v for k, v in res.eval.attribute_acc.items()},
                })
            return out

        base = {**meta, "measurement": "accuracy", "scale": "train", "frames": spec.clip.frames,
                "height": spec.clip.height, "width": spec.clip.width, "backbone": spec.backbone,
                "batch_size": spec.train.batch_size, "ddp_world_size": self.ddp.world_size if self.ddp else 1}
        self._attempt(key, base, fn)
        return holder.get("model")

    def _costs(self, spec, name, meta, scale, clip, backbone, num_classes, device, seed, model) -> None:
        """Every measurement of the table (bench/measurements.py) but the trained one, at this clip scale."""
        wanted = [m for m in measurements.measurements()
                  if m.how != "train" and m.name in spec.measurements and scale in m.scales]
        planned = [(m, b) for m in wanted for b in m.batches(spec, scale)]
        if not planned:
            return
        keys = {(m.name, b): record_key(meta["point_id"], name, seed, m.name, scale, b) for m, b in planned}
        if all(k in self.done for k in keys.values()):  # nothing to do: don't even build the model
            self.summary.skipped += len(keys)
            return
        built: dict[str, Any] = {"model": model}

        def get_model():
            if built["model"] is None:
                built["model"] = self._build(name, clip, backbone, spec, num_classes, seed)
            return built["model"].to(device).eval()

        base = {**meta, "scale": scale, "measured_under_ddp": False}  # costs: one process, after any DDP group
        for m, b in planned:
            key, rec = keys[(m.name, b)], {**base, "measurement": m.name, "batch_size": b}
            if m.how == "rounds":  # deferred: measured with the other models' latencies, round by round
                if key in self.done:
                    self.summary.skipped += 1
                    self.emit("skip", {"key": key})
                else:
                    self._latency_pending.append(dict(key=key, base=rec, get_model=get_model, clip=clip, batch=b,
                                                      meta=meta, scale=scale))
                continue
            ctx = measurements.Context(spec=spec, scale=scale, clip=clip, batch=b, device=device, model=get_model)
            self._attempt(key, rec, lambda m=m, ctx=ctx: m.run(ctx))

    def _latency_rounds(self, spec, device) -> None:
        """Measure the pending latencies in interleaved rounds (``bench.measure.rounds``), then record each."""
        pending, self._latency_pending = self._latency_pending, []
        if not pending:
            return
        m = spec.measure
        kw = dict(device=device, warmup_s=m.warmup_s, min_samples=m.min_samples, max_time_s=m.max_time_s,
                  amp=m.amp, channels_last=m.channels_last, compile=m.compile)
        jobs = []
        for i, p in enumerate(pending):
            x = p["clip"].dummy(p["batch"], device=device)
            jobs.append(LatencyJob(str(i), p["get_model"], x, kw))
            if p["meta"].get("needs_flow"):  # the flow stage alone, in the same rounds as its model
                jobs.append(LatencyJob(f"{i}:flow", lambda g=p["get_model"]: getattr(g(), "flow", None), x, kw))
        names = {str(i): p["meta"]["model"] for i, p in enumerate(pending)}
        results = {r.name: r for r in measure_rounds(jobs, progress=lambda ev, info: self.emit(
            f"latency_{ev}", {**info, "model": names.get(info["job"].split(":")[0], info["job"])}))}
        for i, p in enumerate(pending):
            self._attempt(p["key"], p["base"], lambda i=i, p=p: self._latency(
                results[str(i)], results.get(f"{i}:flow"), p["batch"], device, p["meta"], p["scale"]))

    def _latency(self, res, flow_res, batch, device, meta, scale) -> dict[str, Any]:
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
        gmacs = self._flops.get((meta["point_id"], meta["model"], scale))
        peak = self._matmul_peak(device)
        out["matmul_peak_gflops_s"] = peak
        if gmacs is not None and p50:
            achieved = 2.0 * gmacs * batch / (p50 / 1e3)
            out["achieved_gflops_s"] = achieved
            out["peak_fraction"] = achieved / peak if peak and peak == peak else None
        return out


def _data_facts(*loaders) -> dict[str, Any]:
    """Decoder used and videos skipped (with reasons) by the loaders' datasets, for the accuracy record."""
    facts = [ld.dataset.describe() for ld in loaders if hasattr(getattr(ld, "dataset", None), "describe")]
    skipped = [item for f in facts for item in f.get("skipped_items", [])]
    return {
        "decoder": next((f["decoder"] for f in facts if f.get("decoder")), None),
        "skipped_videos": len(skipped),
        "skipped_video_list": json.dumps(skipped[:100]),  # the first 100 (path, reason) pairs
    }
