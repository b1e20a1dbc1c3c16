"""The claims section of a study run's report: per claim its words, the experiment, the measured effect with
its interval, the verdict and one figure (the effect of every comparison with its 95 % interval).

Computed by ``bench.study.evaluate`` from the records; this module only lays the result out.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Callable

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from . import figures as F
from .render import Block, fmt_num

VERDICT_COLORS = {"supported": F._CB[2], "contradicted": F._CB[3], "not resolved": (0.55, 0.55, 0.55)}


def fmt_effect(effect: float, lo: float, hi: float, exact: bool = False) -> str:
    """``"0.123 [0.05, 0.2]"``; a count: ``"4 (exact)"``; no interval: the effect alone; no effect: ``—``."""
    if not np.isfinite(effect):
        return "—"
    if exact:
        return f"{fmt_num(effect)} (exact)"
    if not (np.isfinite(lo) and np.isfinite(hi)):
        return fmt_num(effect)
    return f"{fmt_num(effect)} [{fmt_num(lo)}, {fmt_num(hi)}]"


def claims_table(result) -> pd.DataFrame:
    """The claims table as displayed: claim, section, verdict, effect [95 % interval], why."""
    rows = []
    for v in result.verdicts:
        rows.append({"claim": v.claim, "notes §": next(c.section for c in result.claims if c.name == v.claim),
                     "verdict": v.verdict, "effect [95 % CI]": fmt_effect(v.effect, v.lo, v.hi, v.exact),
                     "effect": v.effect_label or "—", "why": v.reason})
    return pd.DataFrame(rows)


def claim_figure(verdict, path: Path, *, title: str, dpi: int = 150) -> Path | None:
    """Forest plot: one row per comparison (effect, 95 % interval), its null value as a tick, verdict colour."""
    t = verdict.comparisons
    if t is None or t.empty or not np.isfinite(t["effect"].astype(float)).any():
        return None
    t = t[np.isfinite(t["effect"].astype(float))]
    with F._theme():
        fig, ax = plt.subplots(figsize=(7.5, 0.45 * len(t) + 1.6))
        y = np.arange(len(t))[::-1]
        color = VERDICT_COLORS.get(verdict.verdict, (0.3, 0.3, 0.3))
        eff = t["effect"].astype(float).to_numpy()
        lo, hi = t["lo"].astype(float).to_numpy(), t["hi"].astype(float).to_numpy()
        has = np.isfinite(lo) & np.isfinite(hi)
        ax.errorbar(eff[has], y[has], xerr=[eff[has] - lo[has], hi[has] - eff[has]], fmt="o", color=color,
                    capsize=3, lw=1.4)
        if (~has).any():
            ax.plot(eff[~has], y[~has], "o", mfc="white", mec=color, label="no interval")
        nulls = t["null"].astype(float).to_numpy()
        ax.plot(nulls, y, "|", color="black", ms=14, mew=1.6, label="no effect / bound")
        ax.set_yticks(y)
        ax.set_yticklabels([f"{c} ({lv})" if lv not in ("base", "") else c for c, lv in zip(t["comparison"], t["level"])],
                           fontsize=8)
        ax.set_xlabel(verdict.effect_label or "effect")
        ax.set_title(f"{title}: {verdict.verdict}", fontsize=9)
        ax.set_ylim(-0.6, len(t) - 0.4)
        ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.35 if len(t) < 4 else -0.15), ncol=2,
                  frameon=False)
        fig.tight_layout()
        return F._save(fig, path, dpi)


def _experiment_text(claim, levels: list[tuple[str, str]], seeds: Any, clip: str) -> str:
    lv = ", ".join(label for label, _ in levels) or "none run"
    return (f"{claim.experiment.describe()}; levels: {lv}; seeds: {seeds}; clip: {clip}; decided by "
            f"{claim.decision.kind} on {claim.decision.metric}" + (f" ({claim.decision.scale} clip)"
                                                                   if claim.decision.scale != "train" else ""))


def claims_blocks(meta: dict[str, Any], raw: pd.DataFrame, fig_dir: Path, save_table: Callable[[str, pd.DataFrame], Any],
                  figs: dict[str, Path], dpi: int = 150) -> list[Block]:
    """The report blocks of a study run (``[]`` for an ordinary run); writes tables/claims.csv and one figure
    per claim that has an effect to draw."""
    from bench.study import evaluate, study_meta

    if study_meta(meta) is None:
        return []
    result = evaluate(meta, raw, meta.get("run_id", ""))
    study = study_meta(meta)
    clip_text = study.get("clip", "?")
    seeds = ",".join(str(s) for s in study.get("seeds", [])) or "?"
    claim_seeds = study.get("claim_seeds") or {}  # a claim with Experiment.min_seeds reads more than the study's
    table = result.table()
    save_table("claims", table)
    for v in result.verdicts:
        if not v.comparisons.empty:
            save_table(f"claim_{v.claim.replace('.', '_')}", v.comparisons)
    counts = table["verdict"].value_counts().to_dict() if not table.empty else {}
    blocks = [Block("h2", "Claims of the notes"),
              Block("p", f"Study profile `{result.profile}`: {len(result.verdicts)} claims, "
                         + ", ".join(f"{n} {k}" for k, n in counts.items())
                         + ". Each verdict is computed from the records at α = 0.05 (several comparisons in one claim: "
                           "Holm); *not resolved* means the data cannot decide, not that the claim is false. "
                           "Data: `tables/claims.csv`, one `tables/claim_<name>.csv` per claim."),
              Block("table", table=claims_table(result))]
    for claim, v in zip(result.claims, result.verdicts):
        blocks.append(Block("h3", f"{claim.name} — {v.verdict}"))
        blocks.append(Block("kv", items=[
            ("claim (notes)", f"{claim.text} (§ {claim.section})"), ("tested as", claim.statement),
            ("experiment", _experiment_text(claim, result.levels.get(claim.name, []),
                                            ",".join(map(str, claim_seeds.get(claim.name, []))) or seeds, clip_text)),
            ("effect", f"{fmt_effect(v.effect, v.lo, v.hi, v.exact)} — {v.effect_label or 'none'}"),
            ("verdict", f"{v.verdict}: {v.reason}")]))
        if not v.comparisons.empty:
            shown = v.comparisons.copy()
            shown["effect [95 % CI]"] = [fmt_effect(e, lo, hi, v.exact)
                                         for e, lo, hi in zip(shown["effect"], shown["lo"], shown["hi"])]
            for c in ("p_value", "p_holm"):
                shown[c] = [("—" if not (isinstance(p, float) and math.isfinite(p)) else f"{p:.2g}") for p in shown[c]]
            blocks.append(Block("table", table=shown[["comparison", "level", "effect [95 % CI]", "null", "p_value",
                                                      "p_holm", "test", "note"]]))
        path = claim_figure(v, fig_dir / f"claim_{claim.name.replace('.', '_')}.png", title=claim.name, dpi=dpi)
        if path:
            figs[f"claim_{claim.name}"] = path
            blocks.append(Block("figure", path=path, text=(
                f"{claim.name}: each comparison's effect ({v.effect_label}) with its 95 % interval (hollow: no "
                "interval); black tick: the value of no effect (or the bound); colour: the verdict.")))
        else:
            blocks.append(Block("note", "No figure: no effect was measured for this claim."))
    return blocks
