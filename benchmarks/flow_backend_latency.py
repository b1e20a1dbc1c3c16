"""Two-stream latency at the deployment clip with the flow on each Horn–Schunck backend, back to back.

    python benchmarks/flow_backend_latency.py --rounds 3 [--models two_stream,two_stream_gated] [--threads 2]

The same model (same weights) is timed end to end and its flow stage alone, with ``model.flow.backend`` set to
"fused" and to "torch" in turn, rounds interleaved (fused, torch, fused, torch, ...) so a slow window hits both;
each timing is ``bench.measure.measure_latency`` with the run profile's settings (warm-up until stable, >= 20
samples). Prints the median over rounds of each p50, the flow share and the fused / torch ratios.
"""
from __future__ import annotations

import argparse
import statistics

import torch

from bench.measure import measure_latency
from bench.measure.latency import LatencySettings
from fusion_models import build_model
from fusion_models.clip import ClipSpec

SETTINGS = LatencySettings(warmup_s=0.5, min_samples=20, min_time_s=0.5, max_time_s=3.0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", default="two_stream,two_stream_conv,two_stream_gated")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--frames", type=int, default=16)
    ap.add_argument("--size", type=int, default=112)
    ap.add_argument("--backbone", default="resnet18")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    clip_spec = ClipSpec(frames=args.frames, height=args.size, width=args.size)
    clip = torch.rand(1, args.frames, 3, args.size, args.size, generator=torch.Generator().manual_seed(0))
    print(f"deployment clip T{args.frames} {args.size}², {args.backbone}, batch 1, {args.threads} threads, "
          f"{args.rounds} interleaved rounds; p50 ms (median over rounds)\n")
    print("| model | end to end, fused | end to end, torch | fused / torch | flow, fused | flow, torch | "
          "flow fused / torch | flow share fused | flow share torch |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for name in [m for m in args.models.split(",") if m]:
        torch.manual_seed(0)
        model = build_model(name, clip=clip_spec, num_classes=8, backbone=args.backbone).eval()
        got: dict[tuple[str, str], list[float]] = {}
        for _ in range(args.rounds):
            for backend in ("fused", "torch"):
                model.flow.backend = backend
                for part, module in (("model", model), ("flow", model.flow)):
                    res = measure_latency(module, clip, SETTINGS, batch_size=1)
                    got.setdefault((backend, part), []).append(res.latency_ms_p50)
        med = {k: statistics.median(v) for k, v in got.items()}
        fm, tm, ff, tf = med["fused", "model"], med["torch", "model"], med["fused", "flow"], med["torch", "flow"]
        print(f"| `{name}` | {fm:.1f} | {tm:.1f} | {fm / tm:.2f}× | {ff:.1f} | {tf:.1f} | {ff / tf:.2f}× | "
              f"{ff / fm:.0%} | {tf / tm:.0%} |")


if __name__ == "__main__":
    main()
