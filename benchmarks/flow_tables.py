"""The EPE and throughput tables of docs/flow.md and README: ours (PCG, the default, on the fused CPU
kernel and on torch ops) vs the classic Jacobi solver vs single-scale vs OpenCV Farneback.

    python benchmarks/flow_tables.py epe --sizes 32,112            # deterministic: EPE does not depend on load
    python benchmarks/flow_tables.py speed --threads 2 --rounds 3  # run on an idle machine; says the load

Throughput interleaves the methods round by round (A B C A B C ...) so a slow window hits all of them, and
prints the load average before and after; fields/s = fields per call / median call time over the rounds.
"""
from __future__ import annotations

import argparse
import os
import statistics
import time

import torch

from bench.flowbench import default_methods, flow_robustness, mean_epe_at
from fusion_models.flow import HornSchunck, farneback_flow


def _methods() -> dict:
    def no_grad(m):
        def fn(clip):
            with torch.no_grad():
                return m(clip)
        return fn
    return {"HS pcg fused (default)": no_grad(HornSchunck()),
            "HS pcg torch": no_grad(HornSchunck(backend="torch")),
            "HS jacobi": no_grad(HornSchunck(solver="jacobi")),
            "HS single-scale": no_grad(HornSchunck(levels=1)),
            "Farneback": default_methods()["farneback"]}


def epe(sizes: list[int]) -> None:
    for size in sizes:
        df = flow_robustness(size=size, sigmas=(0.0, 0.05, 0.1), pans=(0.0, 1.0, 2.0), shifts=(0.5, 1, 2, 3),
                             rotations=(3.0,), methods=_methods())
        table = df.pivot_table(index=["factor", "value"], columns="method", values="epe_px", sort=False)
        table = table[list(_methods())]
        order = ["shift_px", "rotation_deg", "noise_sigma", "pan_px"]
        table = table.reindex(sorted(table.index, key=lambda k: (order.index(k[0]), k[1])))
        print(f"\nEPE px at {size}², mean of 3 seeds, 3-px border excluded\n")
        print("| factor | value | " + " | ".join(table.columns) + " |")
        print("|---|---:|" + "---:|" * len(table.columns))
        for (factor, value), row in table.iterrows():
            print(f"| {factor} | {value:g} | " + " | ".join(f"{v:.3f}" for v in row) + " |")


def speed(sizes: list[int], batches: list[int], threads: int, rounds: int) -> None:
    import cv2

    torch.set_num_threads(threads)
    cv2.setNumThreads(threads)
    hs = {"fused": HornSchunck(), "torch": HornSchunck(backend="torch")}
    methods = {"HS fused (default)": hs["fused"], "HS torch ops (before)": hs["torch"], "Farneback": farneback_flow}
    print(f"\nthreads {threads} (torch, numba and OpenCV), {rounds} interleaved rounds, load average before "
          f"{os.getloadavg()[0]:.2f}, torch {torch.__version__}, {hs['fused'].cpu_backend}, OpenCV {cv2.__version__}\n")
    print("| size | batch (fields) | " + " | ".join(f"{m} fields/s" for m in methods)
          + " | fused / torch | fused / Farneback | EPE px fused | EPE px torch | EPE px Farneback |")
    print("|---:|---:|" + "---:|" * (len(methods) + 5))
    with torch.no_grad():
        for size in sizes:
            err = {m: mean_epe_at(size, fn) for m, fn in methods.items()}
            for batch in batches:
                clip = torch.rand(batch, 8, 3, size, size, generator=torch.Generator().manual_seed(size + batch))
                for fn in methods.values():
                    fn(clip)
                per = {m: [] for m in methods}
                for _ in range(rounds):
                    for name, fn in methods.items():
                        times, t0 = [], time.perf_counter()
                        while not times or (time.perf_counter() - t0 < 0.5 and len(times) < 50):
                            a = time.perf_counter()
                            fn(clip)
                            times.append(time.perf_counter() - a)
                        per[name].append(statistics.median(times))
                rate = {m: 7 * batch / statistics.median(v) for m, v in per.items()}
                f, t, fb = rate.values()
                print(f"| {size}² | {batch} ({7 * batch}) | " + " | ".join(f"{r:,.0f}" for r in rate.values())
                      + f" | {f / t:.2f}× | {f / fb:.2f}× | " + " | ".join(f"{e:.3f}" for e in err.values()) + " |")
    print(f"\nload average after {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("what", choices=("epe", "speed"))
    ap.add_argument("--sizes", default="32,64,112")
    ap.add_argument("--batches", default="1,32")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=3)
    a = ap.parse_args()
    sizes = [int(s) for s in a.sizes.split(",")]
    if a.what == "epe":
        epe(sizes)
    else:
        speed(sizes, [int(b) for b in a.batches.split(",")], a.threads, a.rounds)
