"""Our CUDA-event latency against ``torch.utils.benchmark.Timer`` on three models (the latency issue's GPU check).

    PYTHONPATH=. python scripts/gpu_latency_check.py --device cuda --out results.csv

Each model at the deployment clip (T16 112², resnet18, batch 1, K=101), same input, under inference mode:
``bench.measure.measure_latency`` (CUDA events around each call on a GPU, ``perf_counter`` on a CPU) and
``Timer.blocked_autorange`` (which synchronises the device itself), paired three times in alternation; the
ratio of the medians of the pairs should lie within 5 % of 1 on an idle GPU. ``--device cpu --clip T4x32x32``
checks the script itself on a CPU.
"""
from __future__ import annotations

import argparse
import csv
import statistics
import sys


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--models", default="early_fusion,tsm,two_stream")
    ap.add_argument("--clip", default="T16x112x112")
    ap.add_argument("--backbone", default="resnet18")
    ap.add_argument("--pairs", type=int, default=3)
    ap.add_argument("--out", required=True)
    args = ap.parse_args()

    import torch
    import torch.utils.benchmark as tb

    from bench.measure import LatencySettings, measure_latency
    from bench.plan import parse_clip
    from fusion_models import build_model
    from fusion_models.clip import ClipSpec

    t, h, w = parse_clip(args.clip)
    clip = ClipSpec(frames=t, height=h, width=w)
    settings = LatencySettings(warmup_s=1.0, min_samples=50, min_time_s=1.0, max_time_s=3.0)
    rows = []
    for name in args.models.split(","):
        torch.manual_seed(0)
        model = build_model(name, clip=clip, num_classes=101, backbone=args.backbone).eval().to(args.device)
        x = torch.rand(1, t, 3, h, w, device=args.device)
        timer = tb.Timer("with torch.inference_mode():\n    model(x)", globals={"model": model, "x": x, "torch": torch},
                         num_threads=torch.get_num_threads())  # Timer's default is 1 thread; ours runs torch's
        ours, theirs = [], []
        for _ in range(args.pairs):
            theirs.append(timer.blocked_autorange(min_run_time=1.0).median * 1e3)
            ours.append(measure_latency(model, x, settings, device=args.device).latency_ms_p50)
        ratio = statistics.median(o / r for o, r in zip(ours, theirs))
        rows.append({"model": name, "device": args.device, "clip": args.clip, "backbone": args.backbone,
                     "ours_ms_p50": statistics.median(ours), "timer_ms_median": statistics.median(theirs),
                     "ratio_median_of_pairs": ratio, "within_5pct": abs(ratio - 1) <= 0.05,
                     "pairs_ours_ms": " ".join(f"{v:.4g}" for v in ours),
                     "pairs_timer_ms": " ".join(f"{v:.4g}" for v in theirs)})
        print(f"{name}: ours {rows[-1]['ours_ms_p50']:.3f} ms, Timer {rows[-1]['timer_ms_median']:.3f} ms, "
              f"ratio {ratio:.3f}", flush=True)
    with open(args.out, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
