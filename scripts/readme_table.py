"""Print the README results tables (Markdown) for a run:
`python scripts/readme_table.py RUN [--results DIR] [--seeds RUN2[,RUN3...]] [--pairs]`.

Two tables: the main one (accuracy with its 95 % Wilson interval, how training ended, costs at the
deployment clip with the latency's timing flag) and the sample-efficiency one (steps and counted training
compute to 90 % / 99 % of the family ceiling, area under the learning curve). ``--seeds RUN2[,RUN3...]``:
a third instead, the accuracy over the seeds of RUN and the other runs together (mean with the 95 %
t-interval, each seed's top-1, how it stopped and after how many steps; a later run's (model, seed)
replaces an earlier one's), e.g. RUN2 = `bench run --models all --seeds 1,2 --measure accuracy`.
``--pairs``: instead, the README's pairwise comparisons (``PAIRS``) on RUN's one seed: exact McNemar on the
shared validation clips, Holm-adjusted over the pairs listed.
``--ablation KNOB``: instead, one row per (model, KNOB value) of an ablate run (RUN; with ``--seeds``, the accuracy
over its seeds and those runs'): top-1, how training ended, train time, and the costs at the deployment clip.
"""
from __future__ import annotations

import argparse

# The comparisons the README's findings name (a, b): same fusion family or the question a finding asks.
PAIRS = (
    ("two_stream", "two_stream_conv"), ("two_stream", "two_stream_gated"), ("two_stream_conv", "two_stream_gated"),
    ("slow_fusion", "tsm"), ("early_fusion", "two_stream"), ("early_fusion", "tsm"), ("r3d", "r2plus1d"),
    ("hidden_two_stream", "hidden_two_stream_pooled"), ("conv_lstm", "lstm"), ("pool_max", "pool_attn"),
    ("pool_attn", "pool_avg"), ("pool_avg", "late_fusion"), ("temporal_transformer", "lstm"),
)

from bench.results import load_results


def _fmt(fmt: str, v) -> str:
    return fmt.format(v) if v is not None and v == v else "—"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("run")
    ap.add_argument("--results", default="results")
    ap.add_argument("--seeds", help="runs of other seeds, comma-separated (a later run's (model, seed) replaces an "
                    "earlier one's): print the accuracy-over-seeds table instead")
    ap.add_argument("--pairs", action="store_true", help="print the README's McNemar comparisons instead")
    ap.add_argument("--ablation", metavar="KNOB", help="RUN is an ablate run over KNOB: print its table instead")
    args = ap.parse_args()
    df = load_results(args.run, root=args.results)
    if args.ablation:
        others = [load_results(r, root=args.results) for r in (args.seeds or "").split(",") if r]
        _ablation_table(df, others, args.ablation)
        return
    if args.pairs:
        _pairs(df)
        return
    if args.seeds:
        _seeds_table(df, *(load_results(r, root=args.results) for r in args.seeds.split(",") if r))
        return
    ok = df[df["status"] == "ok"]
    acc = ok[ok["measurement"] == "accuracy"].set_index("model")

    def pick(measurement, scale, col, batch=None):
        d = ok[(ok["measurement"] == measurement) & (ok["scale"] == scale)]
        if batch is not None:
            d = d[d["batch_size"] == batch]
        return d.set_index("model")[col] if col in d else {}

    gmacs, params = pick("flops", "cost", "gmacs"), pick("params", "cost", "params")
    lat = ok[(ok["measurement"] == "latency") & (ok["scale"] == "cost") & (ok["batch_size"] == 1)].set_index("model")
    mem = pick("memory", "cost", "peak_mem_mib")
    models = [m for m in dict.fromkeys(df["model"]) if m in acc.index]

    def main_cells(m: str, a) -> list[str]:
        top1 = f"{100 * a['acc_top1']:.1f} [{100 * a['acc_top1_lo']:.1f}, {100 * a['acc_top1_hi']:.1f}]"
        q = lat["timing_quality"].get(m) if "timing_quality" in lat else None
        flow = lat["flow_share"].get(m) if "flow_share" in lat else None
        return [
            a["family"], top1, _fmt("{:.0f}", 100 * a["ceiling_top1"]),
            _fmt("{:.0f}", 100 * a.get("acc_direction", float("nan"))), str(a["stop_reason"]),
            _fmt("{:.0f}", a["steps"]), _fmt("{:.0f}", a["train_time_s"]), _fmt("{:.3g}", gmacs.get(m)),
            _fmt("{:.2f}", params.get(m, float("nan")) / 1e6), _fmt("{:.3g}", lat["latency_ms_p50"].get(m)),
            str(q) if q is not None else "—", _fmt("{:.0f}%", 100 * flow if flow is not None else None),
            _fmt("{:.0f}", mem.get(m)),
        ]

    def efficiency_cells(m: str, a) -> list[str]:
        return [_fmt("{:.0f}", a["steps"]), _fmt("{:.0f}", a["selected_step"]),
                _fmt("{:.0f}", a.get("steps_to_90")), _fmt("{:,.0f}", a.get("gmacs_to_90")),
                _fmt("{:.0f}", a.get("steps_to_99")), _fmt("{:,.0f}", a.get("gmacs_to_99")),
                _fmt("{:.1f}", 100 * a["curve_auc"]), _fmt("{:,.0f}", a["train_gmacs"])]

    _table(["model", "family", "top-1 % [95 % CI] >", "ceiling % >", "direction % >", "stopped", "steps >",
            "train s >", "GMACs >", "params M >", "p50 ms b1 >", "timing", "flow share >", "peak MiB >"],
           models, acc, main_cells)
    print()
    _table(["model", "stopped at step >", "best at step >", "steps to 90 % of ceiling >", "train GMACs to 90 % >",
            "steps to 99 % >", "train GMACs to 99 % >", "curve AUC % >", "train GMACs total >"],
           models, acc, efficiency_cells)


def _pairs(df) -> None:
    """Exact McNemar per pair in ``PAIRS`` (the models' per-clip correctness on the same clips), Holm over them."""
    from bench.measure import holm_adjusted, mcnemar_exact, unpack_correct

    acc = df[(df["status"] == "ok") & (df["measurement"] == "accuracy")].set_index("model")
    pairs = [(a, b) for a, b in PAIRS if a in acc.index and b in acc.index]
    tests = [mcnemar_exact(unpack_correct(acc.at[a, "val_correct"], int(acc.at[a, "val_n"])),
                           unpack_correct(acc.at[b, "val_correct"], int(acc.at[b, "val_n"]))) for a, b in pairs]
    adjusted = holm_adjusted([t.p_value for t in tests])
    print("| a | b | top-1 a % | top-1 b % | a - b (points) | only a right | only b right | p exact | p Holm | resolved |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|---|")
    for (a, b), t, q in zip(pairs, tests, adjusted):
        print(f"| `{a}` | `{b}` | {100 * t.acc_a:.1f} | {100 * t.acc_b:.1f} | {100 * t.diff:+.1f} | {t.a_only} | "
              f"{t.b_only} | {t.p_value:.2g} | {q:.2g} | {'yes' if q <= 0.05 else 'no'} |")


def _accuracy_over_runs(runs, key: tuple[str, ...]):
    """The ok accuracy records of ``runs``, one per ``key`` + seed (a later run's replaces an earlier one's),
    in seed order."""
    import pandas as pd

    df = pd.concat(runs)
    acc = df[(df["status"] == "ok") & (df["measurement"] == "accuracy")]
    return acc.drop_duplicates([*key, "seed"], keep="last").sort_values("seed", kind="stable")


def _seed_cells(d) -> tuple[str, str]:
    """``("mean ± half", "a / b / c")``: top-1 % over the seeds of ``d`` with the report's 95 % t-interval."""
    from bench.report.tables import t_interval

    x = 100 * d["acc_top1"].to_numpy()
    mean, half, _ = t_interval(x)
    return f"{mean:.1f} ± {half:.1f}", " / ".join(f"{v:.1f}" for v in x)


def _seeds_table(*runs) -> None:
    """Accuracy over the seeds of several runs: mean ± the report's 95 % t-interval half-width, per seed."""
    acc = _accuracy_over_runs(runs, ("model",))
    models = list(dict.fromkeys(acc["model"]))
    by = {m: acc[acc["model"] == m] for m in models}
    n = {len(d) for d in by.values()}

    def cells(m: str, _) -> list[str]:
        d = by[m]
        return [*_seed_cells(d), " / ".join(d["stop_reason"].astype(str)), " / ".join(f"{v:.0f}" for v in d["steps"])]

    seeds = " / ".join(str(s) for s in sorted(set(acc["seed"])))
    _table(["model", f"top-1 % (mean ± 95 % t-CI, {'/'.join(map(str, sorted(n)))} seeds) >", f"seeds {seeds}",
            "stopped", "steps"], models, None, cells)


def _ablation_table(df, others, knob: str) -> None:
    """One row per (model, knob value): top-1 (one seed: Wilson interval; more: mean ± t-interval and each seed),
    how each seed stopped and after how many steps, the first seed's train time, and the deployment-clip costs.

    Rows are the run's points (``point_id``, the config hash); the other runs' records join on it, so a point
    of another configuration never mixes in. A run that varies more than ``knob`` is refused."""
    import json

    def parsed(point) -> dict:
        return json.loads(point) if isinstance(point, str) else dict(point or {})

    ok = df[df["status"] == "ok"]
    points = {pid: parsed(pt) for pid, pt in zip(ok["point_id"], ok["point"])}
    extra = sorted({k for pt in points.values() for k in pt} - {knob})
    if extra or not points or any(knob not in pt for pt in points.values()):
        raise SystemExit(f"--ablation {knob}: the run's points vary {extra or 'nothing'} besides or instead of {knob}")
    acc_all = _accuracy_over_runs([df, *others], ("model", "point_id"))
    acc_all = acc_all[acc_all["point_id"].isin(points)]
    cost = ok[ok["scale"] == "cost"]

    def one(measurement, m, pid, col, batch=None):
        d = cost[(cost["measurement"] == measurement) & (cost["model"] == m) & (cost["point_id"] == pid)]
        if batch is not None:
            d = d[d["batch_size"] == batch]
        return d[col].iloc[0] if len(d) and col in d else None

    print("| model | " + knob + " | top-1 % | stopped | steps | train s (first seed) | GMACs | params M "
          "| 1st-conv params | p50 ms | flow share | peak MiB |")
    print("|---|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    order = list(dict.fromkeys(ok["model"]))
    rows = dict.fromkeys(zip(ok.loc[ok["measurement"] == "accuracy", "model"],
                             ok.loc[ok["measurement"] == "accuracy", "point_id"]))
    for m, pid in sorted(rows, key=lambda k: (order.index(k[0]), points[k[1]][knob])):
        d = acc_all[(acc_all["model"] == m) & (acc_all["point_id"] == pid)]
        first = d.iloc[0]
        if len(d) > 1:
            top1 = "{} ({})".format(*_seed_cells(d))
        else:
            top1 = f"{100 * first['acc_top1']:.1f} [{100 * first['acc_top1_lo']:.1f}, {100 * first['acc_top1_hi']:.1f}]"
        flow = one("latency", m, pid, "flow_share", batch=1)
        params = one("params", m, pid, "params")
        quality = one("latency", m, pid, "timing_quality", batch=1)
        print("| " + " | ".join([
            f"`{m}`", str(points[pid][knob]), top1, " / ".join(d["stop_reason"].astype(str)),
            " / ".join(f"{s:.0f}" for s in d["steps"]), _fmt("{:.0f}", first["train_time_s"]),
            _fmt("{:.3g}", one("flops", m, pid, "gmacs")), _fmt("{:.2f}", params / 1e6 if params else None),
            _fmt("{:,.0f}", one("params", m, pid, "first_conv_params")),
            _fmt("{:.3g}", one("latency", m, pid, "latency_ms_p50", batch=1))
            + ("" if quality in (None, "ok") else f" ({quality})"),
            _fmt("{:.0f}%", 100 * flow if flow is not None and flow == flow else None),
            _fmt("{:.0f}", one("memory", m, pid, "peak_mem_mib"))]) + " |")


def _table(headers: list[str], models: list[str], acc, cells) -> None:
    """A Markdown table, one row per model: ``cells(model, its accuracy record)`` after the model's name.
    A header ending in `` >`` is right-aligned (a number column)."""
    names = [h.removesuffix(" >") for h in headers]
    print("| " + " | ".join(names) + " |")
    print("|" + "|".join("---:" if h.endswith(" >") else "---" for h in headers) + "|")
    for m in models:
        print("| " + " | ".join([f"`{m}`", *cells(m, acc.loc[m] if acc is not None else None)]) + " |")

if __name__ == "__main__":
    main()
