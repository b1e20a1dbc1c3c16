"""Does ``torch.compile`` of the training step pay back its compile time in the default run? (and channels_last)

    python benchmarks/train_step_modes.py --rounds 2 [--models a,b] [--run results/example/run-...]

One training step as ``bench.train.train_and_evaluate`` takes it (forward, cross-entropy, backward, gradient
clipping, foreach AdamW; not the scheduler step and the loss bookkeeping, a small constant per step) at the
default run's training clip and batch (T8 32x32, small_cnn, batch 16), in four modes:
``default`` (eager, NCHW: what the default run does), ``cl`` (weights in channels_last, as
``TrainSpec.channels_last``), ``compile`` (``torch.compile(model)``, inductor: forward and backward graphs)
and ``compile+cl``. Every (model, mode) is a fresh process with an empty inductor cache of its own, so the
first step's time is a cold compile, what a default run on a fresh machine would pay; modes alternate within
each round. Reported per model: the first step (s; compile included), the steady step (median of the
round medians), steady speed-up over ``default``, and for the compile modes the *break-even* step count
``(first - first_default) / (step_default - step)``, compared with the steps the model took in a committed
default run (``--run``, its records.jsonl). A mode pays back within the default run when break-even < steps.
Neither mode is exact (outputs differ from the default in the last bits: docs/speed.md), so neither would be
the default either way; this measures whether offering compile for training is worth it.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

MODES = ("default", "cl", "compile", "compile+cl")
DEFAULT_MODELS = ("single_frame,early_fusion,late_fusion,pool_avg,pool_max,pool_attn,lstm,conv_lstm,two_stream,"
                  "two_stream_conv,two_stream_gated,hidden_two_stream,hidden_two_stream_pooled,slow_fusion,tsm,"
                  "r3d,r2plus1d,temporal_transformer")


def worker(name: str, mode: str, steps: int, warmup: int, batch: int) -> dict[str, float]:
    """First-step and steady-step seconds of ``name``'s training step in ``mode`` (this process only)."""
    import torch
    from torch import nn

    from bench.allocator import tune_malloc
    from bench.data import DatasetSpec, make_loader
    from bench.measure._common import to_channels_last
    from fusion_models import build_model
    from fusion_models.clip import ClipSpec

    tune_malloc()  # as the runner does
    clip = ClipSpec()
    loader = make_loader(DatasetSpec(train_size=batch * 8, val_size=32), clip, "train", seed=0, batch_size=batch)
    batches = [(x, y) for x, y, *_ in loader]
    torch.manual_seed(0)
    model = build_model(name, clip=clip, num_classes=16)
    if "cl" in mode.split("+"):
        to_channels_last(model)
    net = torch.compile(model) if "compile" in mode.split("+") else model
    net.train()
    opt = torch.optim.AdamW(model.parameters(), lr=2e-3, weight_decay=1e-4, foreach=True)
    loss_fn = nn.CrossEntropyLoss()

    def step(i: int) -> None:
        clips, labels = batches[i % len(batches)]
        loss = loss_fn(net(clips), labels)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), 5.0)
        opt.step()
        loss.item()

    t0 = time.perf_counter()
    step(0)
    first = time.perf_counter() - t0
    for i in range(warmup):
        step(1 + i)
    times = []
    for i in range(steps):
        t0 = time.perf_counter()
        step(1 + warmup + i)
        times.append(time.perf_counter() - t0)
    return {"first_s": first, "step_s": statistics.median(times)}


def run_steps(path: str | None) -> dict[str, int]:
    """Steps each model trained in a committed run (its accuracy records)."""
    if not path:
        return {}
    from bench.results import load_results

    df = load_results(path)
    acc = df[df["measurement"] == "accuracy"]
    return {m: int(s) for m, s in zip(acc["model"], acc["steps"])}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default=DEFAULT_MODELS)
    ap.add_argument("--modes", default=",".join(MODES))
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--run", help="a committed default run: its per-model steps set the break-even column")
    ap.add_argument("--json", help="also write the raw measurements here")
    ap.add_argument("--warm-cache", action="store_true",
                    help="compile modes: first fill the inductor cache in a throwaway process, so the first step is "
                         "what a second run on the same machine pays")
    ap.add_argument("--worker", nargs=2, metavar=("MODEL", "MODE"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        print(json.dumps(worker(*args.worker, args.steps, args.warmup, args.batch)))
        return
    here = Path(__file__).resolve().parents[1]
    models = [m for m in args.models.split(",") if m]
    modes = [m for m in args.modes.split(",") if m]
    if "default" not in modes:
        modes.insert(0, "default")
    got: dict[tuple[str, str], list[dict[str, float]]] = {}
    for name in models:
        for _ in range(args.rounds):
            for mode in modes:
                with tempfile.TemporaryDirectory() as cache:  # a cold inductor cache: the first step compiles
                    env = {**os.environ, "PYTHONPATH": str(here), "TORCHINDUCTOR_CACHE_DIR": cache}
                    cmd = [sys.executable, __file__, "--worker", name, mode, "--steps", str(args.steps),
                           "--warmup", str(args.warmup), "--batch", str(args.batch)]
                    if args.warm_cache and "compile" in mode:
                        subprocess.run(cmd, env=env, capture_output=True, text=True, cwd=here)
                    res = subprocess.run(cmd, env=env, capture_output=True, text=True, cwd=here)
                if res.returncode:
                    raise SystemExit(f"{name} {mode} failed: {res.stderr.strip().splitlines()[-1:]}")
                got.setdefault((name, mode), []).append(json.loads(res.stdout.strip().splitlines()[-1]))
    if args.json:
        Path(args.json).write_text(json.dumps({f"{n}|{m}": v for (n, m), v in got.items()}, indent=1))
    steps = run_steps(args.run)
    head = ["model", "run steps"] + [f"{m} first s" for m in modes] + [f"{m} step ms" for m in modes] + \
        [f"{m} / default" for m in modes[1:]] + [f"{m} break-even steps" for m in modes if "compile" in m]
    print("| " + " | ".join(head) + " |")
    print("|" + "---|" * len(head))
    for name in models:
        first = {m: statistics.median(r["first_s"] for r in got[(name, m)]) for m in modes}
        step = {m: statistics.median(r["step_s"] for r in got[(name, m)]) for m in modes}
        cells = [f"`{name}`", str(steps.get(name, "—"))]
        cells += [f"{first[m]:.1f}" for m in modes] + [f"{step[m] * 1e3:.1f}" for m in modes]
        cells += [f"{step['default'] / step[m]:.2f}×" for m in modes[1:]]
        for m in modes:
            if "compile" not in m:
                continue
            gain = step["default"] - step[m]
            cells.append(f"{(first[m] - first['default']) / gain:,.0f}" if gain > 0 else "never")
        print("| " + " | ".join(cells) + " |")
    print(f"\nbatch {args.batch}, T8 32x32, small_cnn; median over {args.rounds} rounds of the median of "
          f"{args.steps} steps after {args.warmup}; first = the first step of a fresh process "
          f"({'warm inductor cache' if args.warm_cache else 'cold compile'})")


if __name__ == "__main__":
    main()
