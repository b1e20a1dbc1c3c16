"""Print the compact README results table (Markdown) for a run: `python scripts/readme_table.py RUN [--results DIR]`."""
from __future__ import annotations

import argparse

from bench.results import load_results


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("run")
    ap.add_argument("--results", default="results")
    args = ap.parse_args()
    df = load_results(args.run, root=args.results)
    ok = df[df["status"] == "ok"]

    def pick(measurement, scale, col, batch=None):
        d = ok[(ok["measurement"] == measurement) & (ok["scale"] == scale)]
        if batch is not None:
            d = d[d["batch_size"] == batch]
        return d.groupby("model")[col].mean()

    acc = ok[ok["measurement"] == "accuracy"].groupby("model")
    cols = {
        "top-1 %": acc["acc_top1"].mean() * 100,
        "ceiling %": acc["ceiling_top1"].first() * 100,
        "shape %": acc["acc_shape"].mean() * 100,
        "direction %": acc["acc_direction"].mean() * 100,
        "train s": acc["train_time_s"].mean(),
        "params (train clip)": pick("params", "train", "params"),
        "1st-conv params (train)": pick("params", "train", "first_conv_params"),
        "GMACs (deploy)": pick("flops", "cost", "gmacs"),
        "params M (deploy)": pick("params", "cost", "params") / 1e6,
        "p50 ms b1 (deploy)": pick("latency", "cost", "latency_ms_p50", 1),
        "flow share (deploy)": pick("latency", "cost", "flow_share", 1) * 100,
        "peak MiB (deploy)": pick("memory", "cost", "peak_mem_mib"),
    }
    order = list(dict.fromkeys(df["model"]))
    fmt = {"top-1 %": "{:.1f}", "ceiling %": "{:.0f}", "shape %": "{:.0f}", "direction %": "{:.0f}", "train s": "{:.0f}",
           "params (train clip)": "{:,.0f}", "1st-conv params (train)": "{:,.0f}", "GMACs (deploy)": "{:.3g}",
           "params M (deploy)": "{:.2f}", "p50 ms b1 (deploy)": "{:.3g}", "flow share (deploy)": "{:.0f}%",
           "peak MiB (deploy)": "{:.0f}"}
    fam = df.groupby("model")["family"].first()
    print("| model | family | " + " | ".join(cols) + " |")
    print("|---|---|" + "---:|" * len(cols))
    for m in order:
        cells = []
        for name, series in cols.items():
            v = series.get(m)
            cells.append(fmt[name].format(v) if v is not None and v == v else "—")
        print(f"| `{m}` | {fam.get(m, '')} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
