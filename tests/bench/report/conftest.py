"""Realistic fake runs written through the real RunStore: six models (one two-stream with a flow stage,
one that runs out of memory at the deployment clip), two seeds, both cost scales, and an ablation over frames."""
from __future__ import annotations

import json

import numpy as np
import pytest

from bench.results import RunStore

MODELS = {
    # name: (family, fusion_point, order_aware, needs_flow, top-1 accuracy, ceiling)
    "single_frame": ("single_frame", "none", False, False, 0.24, 0.25),
    "pool_avg": ("order_invariant", "feature", False, False, 0.46, 0.50),
    "late_fusion": ("order_invariant", "logit", False, False, 0.44, 0.50),
    "early_fusion": ("order_aware", "input", True, False, 0.91, 1.00),
    "conv_lstm": ("order_aware", "feature_map", True, False, 0.83, 1.00),
    "two_stream": ("order_aware", "logit", True, True, 0.78, 1.00),
}
CEIL_SHAPE = {"single_frame": 1.0, "order_invariant": 1.0, "order_aware": 1.0}
CEIL_DIR = {"single_frame": 0.25, "order_invariant": 0.5, "order_aware": 1.0}
SCALES = {"train": (8, 32, "small_cnn", 16), "cost": (16, 112, "resnet18", 64)}
ENV = {"device": "cpu", "device_name": "Fake CPU @ 2GHz", "cpu_name": "Fake CPU @ 2GHz", "cpu_count": 2,
       "threads": 2, "interop_threads": 2, "torch_version": "2.14.1", "torchvision_version": "0.29.1",
       "python_version": "3.11.2", "platform": "Linux", "git_commit": "abc1234", "git_dirty": False,
       "fusionbench_version": "0.1.0", "cuda_version": None}


def _cost(model: str, scale: str, frames: int) -> dict:
    t, size, backbone, width = SCALES[scale]
    t = frames if scale == "train" else t
    k = 16
    in_ch = 3 * t if model == "early_fusion" else 3
    first = in_ch * width * 9 + width
    base = 20_000 if scale == "train" else 11_200_000
    params = base + first - 3 * width * 9 + (width * k) + (50_000 if model == "conv_lstm" else 0)
    if model == "two_stream":
        params *= 2
    per_frame = 0.002 * (size / 32) ** 2 * (20 if scale == "cost" else 1)
    gmacs = per_frame * (1 if model == "early_fusion" else t) * (2 if model == "two_stream" else 1)
    lat = 0.8 + 40 * gmacs + (3.0 * t if model == "two_stream" else 0)
    return dict(params=params, params_trainable=params, first_conv_params=first, gmacs=gmacs,
                gflops_torch=2 * gmacs, lat=lat, t=t, size=size, backbone=backbone)


def write_run(root, run_id: str, *, models=MODELS, seeds=(0, 1), frames_grid=(None,), command="bench run --models all",
              oom: str | None = "conv_lstm", status: str = "complete", cost_scale: bool = True, device: str = "cpu",
              speed: float = 1.0, flags: dict | None = None, latency_extra: dict | None = None) -> str:
    store = RunStore.create(root, run_id)
    store.write_meta({"run_id": run_id, "points": [],  # what `latest` requires of a run.json of this suite
                      "spec": {"models": list(models), "seeds": list(seeds), "profile": "quick",
                               "clip": {"frames": 8, "height": 32, "width": 32}},
                      "environment": {**ENV, "device": device}, "command": command, "status": status,
                      "started_at": "2026-11-25T17:00:00+00:00", "finished_at": "2026-11-25T17:05:00+00:00",
                      "wall_time_s": 300.0, "matmul_peak_gflops_s": 55.0})
    rng = np.random.default_rng(abs(hash(run_id)) % 2**32)
    for frames in frames_grid:
        point = {} if frames is None else {"frames": frames}
        t_train = frames or 8
        for model, (fam, fp, oa, flow, acc, ceil) in models.items():
            meta = dict(model=model, family=fam, fusion_point=fp, order_aware=oa, needs_flow=flow,
                        point=json.dumps(point), point_id=f"p{t_train}", dataset="synthetic", num_classes=16,
                        noise=0.0, camera=0.0, device=device, threads=2)
            scales = ("train", "cost") if cost_scale else ("train",)
            for seed in seeds:
                a = min(ceil, acc * (0.7 + 0.3 * t_train / 8 if frames else 1) + rng.normal(0, 0.015))
                d = a / ceil
                store.append({**meta, "seed": seed, "measurement": "accuracy", "scale": "train", "status": "ok",
                              "frames": t_train, "height": 32, "width": 32, "backbone": "small_cnn", "batch_size": 32,
                              "acc_top1": a, "acc_shape": min(1.0, 0.97 + rng.normal(0, 0.01)),
                              "acc_direction": d * CEIL_DIR[fam], "ceiling_top1": ceil,
                              "ceiling_shape": CEIL_SHAPE[fam], "ceiling_direction": CEIL_DIR[fam],
                              "per_class_acc": {"square-left": a}, "train_time_s": 10.0 + rng.random()})
                for scale in scales:
                    c = _cost(model, scale, t_train)
                    dims = dict(frames=c["t"], height=c["size"], width=c["size"], backbone=c["backbone"])
                    common = {**meta, **dims, "seed": seed, "scale": scale}
                    store.append({**common, "measurement": "params", "status": "ok", "batch_size": 1,
                                  "params": c["params"], "params_trainable": c["params"],
                                  "first_conv_params": c["first_conv_params"]})
                    store.append({**common, "measurement": "flops", "status": "ok", "batch_size": 1,
                                  "gmacs": c["gmacs"], "gflops_torch": c["gflops_torch"]})
                    for batch in ((1, 32) if scale == "train" else (1, 8)):
                        if oom == model and scale == "cost" and batch == 8:
                            store.append({**common, "measurement": "latency", "status": "oom", "batch_size": batch,
                                          "error": "RuntimeError: DefaultCPUAllocator: not enough memory: "
                                                   "you tried to allocate 8589934592 bytes."})
                            continue
                        lat = c["lat"] * batch ** 0.8 * speed
                        s = lat * (1 + rng.gamma(2.0, 0.03, size=40))
                        rec = {**common, "measurement": "latency", "status": "ok", "batch_size": batch,
                               "latency_ms_p50": float(np.median(s)), "latency_ms_p90": float(np.percentile(s, 90)),
                               "latency_ms_p99": float(np.percentile(s, 99)), "latency_ms_mean": float(s.mean()),
                               "latency_ms_iqr": float(np.subtract(*np.percentile(s, [75, 25]))),
                               "latency_samples_ms": s.tolist(),
                               "throughput_clips_s": batch / float(np.median(s)) * 1000, **(latency_extra or {})}
                        if flags is not None:  # timing_quality as bench.measure.rounds writes it
                            q = flags.get(model, "ok")
                            rec.update(timing_quality=q, timing_reason=None if q == "ok" else f"{q} on purpose")
                        if flow:
                            rec["flow_latency_ms_p50"] = 3.0 * c["t"] * batch ** 0.8 * speed
                            rec["flow_share"] = rec["flow_latency_ms_p50"] / rec["latency_ms_p50"]
                        store.append(rec)
                    mem_status = "oom" if (oom == model and scale == "cost") else "ok"
                    store.append({**common, "measurement": "memory", "status": mem_status, "batch_size": 1,
                                  **({"peak_mem_mib": 2.0 * c["gmacs"] * 10 + 5, "train_peak_mem_mib": 50.0}
                                     if mem_status == "ok" else {"error": "out of memory"})})
    return run_id


@pytest.fixture(scope="session")
def runs(tmp_path_factory):
    """``(results_root, main_run_id, ablation_run_id, gpu_run_id)``."""
    root = tmp_path_factory.mktemp("results")
    main = write_run(root, "run-main")
    abl = write_run(root, "run-ablate", models={k: MODELS[k] for k in ("single_frame", "late_fusion", "early_fusion")},
                    frames_grid=(2, 4, 8), cost_scale=False, oom=None,
                    command="bench ablate --models single_frame,late_fusion,early_fusion --vary frames=2,4,8")
    gpu = write_run(root, "run-gpu", device="cuda:0", speed=0.2, oom=None)
    return root, main, abl, gpu


def fake_param_counter():
    """Stands in for building real models: early fusion's first conv grows with 3T, the rest stay flat."""
    def count(model, *, frames, height, width, num_classes, backbone):
        if model == "two_stream" and frames < 2:
            return None
        first = (3 * frames if model == "early_fusion" else 3) * 64 * 49
        return 11_000_000 + first, first

    return count


@pytest.fixture(scope="session")
def reports(runs, tmp_path_factory):
    """Reports of the main run, the ablation run and both together, built once (dpi kept low for speed)."""
    from bench.report import build_report
    from bench.report import param_sweep

    root, main, abl, _ = runs
    out = tmp_path_factory.mktemp("reports")
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(param_sweep, "_default_param_counter", fake_param_counter)
        built = {
            "main": build_report([main], results_root=root, out_root=out, dpi=50),
            "ablation": build_report([abl], results_root=root, out_root=out, dpi=50),
        }
    return built


@pytest.fixture
def fake_runs():
    """The helpers of this module for tests that write their own runs (conftest is not importable by name)."""
    import types

    return types.SimpleNamespace(write_run=write_run, MODELS=MODELS, fake_param_counter=fake_param_counter)


@pytest.fixture(scope="session")
def param_counter():
    """``fake_param_counter`` for session/module-scoped fixtures (``fake_runs`` is function-scoped)."""
    return fake_param_counter
