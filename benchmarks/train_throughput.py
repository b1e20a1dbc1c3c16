"""Training throughput (clips/s) of the one training loop, per model, against another checkout.

    python benchmarks/train_throughput.py --compare /path/to/old/checkout --rounds 2 [--models a,b]

Each (checkout, variant) runs in its own process with ``PYTHONPATH`` set to that checkout, alternating
rounds (old, new, old, new, ...) so machine load hits both alike; the median over rounds is reported.
A worker trains ``--epochs`` epochs over the same ``--steps`` batches (after ``--warmup`` untimed steps) of
batch 32 at the default training clip (T8, 32x32, small_cnn) through ``bench.train.train_and_evaluate`` -- the
public API both checkouts share -- on materialised synthetic clips, and prints clips/s per model as JSON.
Epochs > 1 are what the training flow cache pays back on (the two-stream models; epoch 1 computes the flow).
Variants (new checkout only, '+'-joined): ``default``, ``fused`` (fused AdamW), ``cl`` (channels_last),
``nocache`` (flow cache off), ``torchflow`` (Horn–Schunck on torch ops, not the fused CPU kernel), ``bN``
(training batch N instead of 32, e.g. ``b16``). Numbers measured on the 2-core dev machine are in docs/speed.md.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path


def worker(models: list[str], steps: int, warmup: int, variant: str, epochs: int) -> dict[str, float]:
    """clips/s of ``steps`` training steps per model (this process's checkout)."""
    import dataclasses

    import torch

    from bench.config import TrainSpec
    from bench.data import DatasetSpec, make_loader
    from bench.train import train_and_evaluate
    from fusion_models import build_model
    from fusion_models.clip import ClipSpec

    clip = ClipSpec()
    parts = variant.split("+")
    batch = next((int(p[1:]) for p in parts if p[:1] == "b" and p[1:].isdigit()), 32)
    n = batch * (steps + warmup)
    loader = make_loader(DatasetSpec(train_size=n, val_size=32), clip, "train", seed=0, batch_size=batch)
    batches = list(loader)
    val = batches[:1]
    fields = {f.name for f in dataclasses.fields(TrainSpec)}
    extra = {}
    if "fused" in parts:
        extra["fused_adamw"] = True
    if "cl" in parts:
        extra["channels_last"] = True
    if "nocache" in parts:
        extra["flow_cache_mib"] = 0
    if not set(extra) <= fields:
        raise SystemExit(f"variant {variant} needs TrainSpec fields {sorted(set(extra) - fields)}")
    out = {}
    for name in models:
        times = []
        for part, n_epochs in ((batches[:warmup], 1), (batches[warmup:], epochs)):
            torch.manual_seed(0)
            model = build_model(name, clip=clip, num_classes=16)
            if "torchflow" in parts and isinstance(getattr(model, "flow", None), torch.nn.Module):
                model.flow.backend = "torch"   # Horn–Schunck on torch ops instead of the fused CPU kernel
            spec = TrainSpec(epochs=n_epochs, batch_size=batch, **extra)
            t0 = time.perf_counter()
            res = train_and_evaluate(model, part, val, spec=spec, seed=0)
            times.append(res.train_time_s if res.train_time_s else time.perf_counter() - t0)
        out[name] = batch * steps * epochs / times[1]
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default="single_frame,early_fusion,pool_avg,lstm,conv_lstm,two_stream,"
                    "hidden_two_stream,slow_fusion,tsm,r3d,r2plus1d,temporal_transformer")
    ap.add_argument("--steps", type=int, default=12)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--epochs", type=int, default=1, help="epochs over the same timed batches")
    ap.add_argument("--compare", help="old checkout to measure back to back (its default variant)")
    ap.add_argument("--variants", default="default,fused,cl,fused+cl")
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--variant", default="default", help=argparse.SUPPRESS)
    args = ap.parse_args()
    models = [m for m in args.models.split(",") if m]
    if args.worker:
        print(json.dumps(worker(models, args.steps, args.warmup, args.variant, args.epochs)))
        return
    here = Path(__file__).resolve().parents[1]
    runs = ([("old", Path(args.compare).resolve(), "default")] if args.compare else []) + \
        [(f"new:{v}", here, v) for v in args.variants.split(",")]
    got: dict[str, list[dict[str, float]]] = {label: [] for label, _, _ in runs}
    for _ in range(args.rounds):
        for label, root, variant in runs:
            env = {**os.environ, "PYTHONPATH": str(root)}
            cmd = [sys.executable, str(here / "benchmarks" / "train_throughput.py"), "--worker", "--variant", variant,
                   "--models", ",".join(models), "--steps", str(args.steps), "--warmup", str(args.warmup),
                   "--epochs", str(args.epochs)]
            res = subprocess.run(cmd, env=env, capture_output=True, text=True, cwd=root)
            if res.returncode:
                raise SystemExit(f"{label} failed: {res.stderr.strip().splitlines()[-1:]}")
            got[label].append(json.loads(res.stdout.strip().splitlines()[-1]))
    labels = list(got)
    width = max(14, *(len(lab) + 2 for lab in labels))
    print("model".ljust(22) + "".join(f"{lab:>{width}}" for lab in labels) + ("   new/old" if args.compare else ""))
    for m in models:
        med = {lab: statistics.median(r[m] for r in got[lab]) for lab in labels}
        row = m.ljust(22) + "".join(f"{med[lab]:{width}.0f}" for lab in labels)
        if args.compare:
            row += "".join(f" {med[lab] / med['old']:5.2f}x" for lab in labels[1:])
        print(row)
    print("clips/s, median of", args.rounds, "rounds;", args.epochs, "epoch(s) of", args.steps,
          "steps at T8 32x32 (batch 32 unless the variant says bN)")


if __name__ == "__main__":
    main()
