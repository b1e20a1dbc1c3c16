"""The notes' claims as data: one ``Claim`` per advantage or disadvantage, each with the experiment that tests
it and the statistic that decides it (``bench/study/verdicts.py``).

Adding a claim is one entry in ``CLAIMS``::

    Claim(name="...", section="3. Late Fusion", text="<the notes' words>",
          experiment=Experiment(models=(...), fields=(("dataset", "synthetic-order"),), sweeps=("noise",)),
          decision=Decision(kind="paired_diff", metric="acc_top1", subject=(...), against=(...), expect="less"))

``Experiment.fields`` are ``bench.fields`` names (any RunSpec field, as ``--vary`` takes them) applied to the
study's base spec; ``sweeps`` are knobs varied one at a time over the study profile's levels
(``bench/study/plan.py``). Which models a claim compares, and in which direction, is its ``Decision``.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

KINDS = ("exact_scaling", "paired_diff", "degradation", "bound", "spread", "share", "ratio", "gain")


@dataclass(frozen=True)
class Experiment:
    """What to run: the models, fields set on the study's base spec, and knobs swept one at a time."""

    models: tuple[str, ...]
    fields: tuple[tuple[str, Any], ...] = ()   # bench.fields name -> value, e.g. ("dataset", "synthetic-order")
    sweeps: tuple[str, ...] = ()               # knobs varied alone over the profile's levels (noise, camera, frames)
    min_seeds: int = 0                         # at least seeds 0..n-1 (a cost measured per seed needs >= 2 for a CI)
    # a model trained first (same spec, training split and seed) whose encoder then initialises every model:
    # the models run from scratch and from it (levels "base" and "pretrained"; bench/study/plan.py)
    pretrain: str = ""

    def describe(self) -> str:
        """One line: models, fields, knobs (the profile supplies the knob values)."""
        parts = [", ".join(self.models)]
        parts += [f"{k}={v}" for k, v in self.fields]
        extra = [f"seeds 0..{self.min_seeds - 1} at least"] if self.min_seeds else []
        if self.pretrain:
            extra.append(f"from scratch and from the encoder of {self.pretrain} pre-trained on the training split")
        return "; ".join(parts + [f"{k} swept" for k in self.sweeps] + extra)


@dataclass(frozen=True)
class Decision:
    """Which statistic decides a claim (see ``verdicts.DECIDERS``) and what the claim predicts of it.

    ``subject`` are the models the claim is about, ``against`` what they are compared with; ``expect`` is
    ``"greater"`` or ``"less"``: the direction of subject - against (or subject / against) the claim predicts.
    ``threshold``: the bound of a ``bound`` / ``share`` decision; ``margin``: how far above a bound still
    counts as at it (``bound``). ``gain``: each model's pretrained − scratch ``metric``; the subject's gain and
    its excess over each other's gain decide, the others' own gains are shown beside them.
    """

    kind: str
    metric: str = "acc_top1"
    subject: tuple[str, ...] = ()
    against: tuple[str, ...] = ()
    expect: str = "greater"
    threshold: float | None = None
    margin: float = 0.0
    scale: str = "train"       # record scale read: train (training clip) | cost (deployment clip)

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"unknown decision kind {self.kind!r}; choose from {', '.join(KINDS)}")
        if self.expect not in ("greater", "less"):
            raise ValueError(f"expect must be 'greater' or 'less', got {self.expect!r}")


@dataclass(frozen=True)
class Claim:
    """One claim of the notes: its words, where they stand, how it is tested and decided."""

    name: str
    section: str        # the notes' section, e.g. "2. Early Fusion"
    text: str           # the claim in the notes' own words
    statement: str      # what is measured, in one sentence (what "supported" means)
    experiment: Experiment
    decision: Decision

    @property
    def models(self) -> tuple[str, ...]:
        return self.experiment.models


# RGB-only order-aware models the two-stream ones are compared with: early fusion (input) and TSM (inside the
# backbone) train in about a sixth of conv_lstm's time at the quick profile (docs/study.md), and sweeps repeat them
_ORDER_RGB = ("early_fusion", "tsm")
_ACC = (("measure", "accuracy"),)
_COST = (("measure", "flops+latency"), ("measure.latency_batches", "1"))

CLAIMS: tuple[Claim, ...] = (
    Claim(
        "early_fusion.params_x_T", "2. Early Fusion",
        "#W = k²·(3T)·C_out compared to single-frame k²·3·C_out: thus parameters increase by factor T "
        "(disadvantage: parameter explosion)",
        "early fusion's first-conv parameters equal exactly T × single-frame's (k²·3·C_out) at every T",
        Experiment(("early_fusion", "single_frame"), (("measure", "params"), ("cost.enabled", False)), ("frames",)),
        Decision("exact_scaling", metric="first_conv_params", subject=("early_fusion",), against=("single_frame",)),
    ),
    Claim(
        "early_fusion.weak_order", "2. Early Fusion",
        "Disadvantage: weak temporal order modeling",
        "on synthetic-order (classes are orderings of the same frames) early fusion's top-1 is below every other "
        "order-aware model's",
        Experiment(("early_fusion", "lstm", "tsm", "temporal_transformer"),
                   _ACC + (("dataset", "synthetic-order"),)),
        Decision("paired_diff", subject=("early_fusion",), against=("lstm", "tsm", "temporal_transformer"),
                 expect="less"),
    ),
    Claim(
        "early_fusion.early_interaction", "2. Early Fusion",
        "Advantage: early interaction between frames",
        "early fusion's direction accuracy is above late fusion's (which fuses after the per-frame network)",
        Experiment(("early_fusion", "late_fusion"), _ACC),
        Decision("paired_diff", metric="acc_direction", subject=("early_fusion",), against=("late_fusion",)),
    ),
    Claim(
        "late_fusion.pretrained_reuse", "3. Late Fusion",
        "Advantage: reuse pretrained 2D CNN",
        "starting the shared 2D encoder from single_frame pre-trained on the training split raises late fusion's "
        "top-1 (McNemar), and by more than it raises each other strategy's (early fusion's first conv inflated to 3T)",
        Experiment(("late_fusion", "early_fusion", "pool_avg", "lstm", "conv_lstm"), _ACC, pretrain="single_frame"),
        Decision("gain", subject=("late_fusion",), against=("early_fusion", "pool_avg", "lstm", "conv_lstm")),
    ),
    Claim(
        "late_fusion.stable_training", "3. Late Fusion",
        "Advantage: stable training",
        "late fusion's seed-to-seed spread of top-1 is below every other strategy's (F-test of variances over "
        "seeds 0..2 at least)",
        Experiment(("late_fusion", "early_fusion", "lstm", "conv_lstm", "two_stream"), _ACC, min_seeds=3),
        Decision("spread", subject=("late_fusion",), against=("early_fusion", "lstm", "conv_lstm", "two_stream"),
                 expect="less"),
    ),
    Claim(
        "late_fusion.weak_interaction", "3. Late Fusion",
        "Disadvantage: weak temporal interaction",
        "late fusion's direction accuracy is below that of models that fuse time inside the network",
        Experiment(("late_fusion", "early_fusion", "conv_lstm"), _ACC),
        Decision("paired_diff", metric="acc_direction", subject=("late_fusion",), against=("early_fusion", "conv_lstm"),
                 expect="less"),
    ),
    Claim(
        "pooling.reversal_invariance", "4. Temporal Pooling",
        "x = (1/T) Σ x_t;  x_i = max_t (x_t)_i;  x = Σ α_t x_t with α = softmax(wᵀx_t): each a symmetric function "
        "of the frames, so invariant under their reversal",
        "each pooling model's direction accuracy reaches the order-invariant ceiling of 50 % (within ±5 points, "
        "TOST) and none passes it",
        Experiment(("pool_avg", "pool_max", "pool_attn"), _ACC),
        Decision("bound", metric="acc_direction", subject=("pool_avg", "pool_max", "pool_attn"), expect="less",
                 threshold=0.5, margin=0.05),
    ),
    Claim(
        "recurrent.convlstm_vs_lstm", "6. ConvLSTM",
        "ConvLSTM replaces matrix multiplication with convolution: X_t ∈ R^{H×W×C_x} (fusing before spatial "
        "pooling) against x_t ∈ R^d (after it)",
        "conv_lstm's top-1 is above lstm's on the synthetic motion task",
        Experiment(("lstm", "conv_lstm"), _ACC),
        Decision("paired_diff", subject=("conv_lstm",), against=("lstm",)),
    ),
    Claim(
        "two_stream.flow_cost", "7. Two-Stream Network",
        "Limitations: 1. Flow computation cost",
        "the optical-flow stage is at least 10 % of two_stream's latency at the deployment clip (FLOPs share shown "
        "beside it)",
        Experiment(("two_stream",), _COST, min_seeds=2),
        Decision("share", metric="flow_share", subject=("two_stream",), threshold=0.10, scale="cost"),
    ),
    Claim(
        "two_stream.noise_sensitivity", "7. Two-Stream Network",
        "Limitations: 2. Flow sensitivity to noise",
        "two_stream loses more top-1 from clean to the noisiest level than RGB-only order-aware models",
        Experiment(("two_stream",) + _ORDER_RGB, _ACC, ("noise",)),
        Decision("degradation", subject=("two_stream",), against=_ORDER_RGB),
    ),
    Claim(
        "two_stream.end_to_end", "7. Two-Stream Network",
        "Limitations: 3. Harder end-to-end optimization",
        "two_stream's learning-curve area (mean stopping accuracy over the step budget) is below RGB-only "
        "order-aware models'",
        # a curve area has no per-clip test: its interval comes from seeds (a paired t over seeds 0..2)
        Experiment(("two_stream",) + _ORDER_RGB, _ACC, min_seeds=3),
        Decision("paired_diff", metric="curve_auc", subject=("two_stream",), against=_ORDER_RGB, expect="less"),
    ),
    Claim(
        "two_stream.camera_motion", "7. Two-Stream Network",
        "Limitations: 4. Camera motion interference",
        "two_stream loses more top-1 from a still camera to the strongest pan than RGB-only order-aware models",
        Experiment(("two_stream",) + _ORDER_RGB, _ACC, ("camera",)),
        Decision("degradation", subject=("two_stream",), against=_ORDER_RGB),
    ),
    Claim(
        "conv_fusion.vs_logit", "8. Convolutional Two-Stream Fusion",
        "F_mix = W_1x1 * concat(F^(s), F^(t));  F = G ⊙ F^(s) + (1 − G) ⊙ F^(t): fusing the streams' feature maps",
        "1×1-conv and gated fusion of the two streams' maps are each more accurate than logit fusion of the same "
        "two streams",
        # Seeds 0..2: the fusions differ by 1-2 points near their ceiling, less than one model's seed-to-seed
        # spread (two_stream 97.9 / 99.3 / 99.5 %), so a one-seed McNemar judged seed 0's networks, not the fusion
        # (it flipped when the flow changed by float32 rounding); a paired t over seeds judges the fusion.
        Experiment(("two_stream", "two_stream_conv", "two_stream_gated"), _ACC, min_seeds=3),
        Decision("paired_diff", subject=("two_stream_conv", "two_stream_gated"), against=("two_stream",)),
    ),
    Claim(
        "hidden.no_flow", "9. Hidden Two-Stream",
        "Advantages: no explicit flow computation",
        "hidden_two_stream's latency at the deployment clip is below two_stream's (ratio < 1)",
        Experiment(("two_stream", "hidden_two_stream"), _COST, min_seeds=2),
        Decision("ratio", metric="latency_ms_p50", subject=("hidden_two_stream",), against=("two_stream",),
                 expect="less", scale="cost"),
    ),
    Claim(
        "hidden.weaker_motion", "9. Hidden Two-Stream",
        "Disadvantages: motion signal may be weaker than true flow",
        "hidden_two_stream's top-1 is below two_stream's on clean, noisy and panning clips",
        Experiment(("two_stream", "hidden_two_stream"), _ACC, ("noise", "camera")),
        Decision("paired_diff", subject=("hidden_two_stream",), against=("two_stream",), expect="less"),
    ),
)


def claim_names() -> list[str]:
    return [c.name for c in CLAIMS]


def get_claims(names: str | None) -> tuple[list[Claim], list[str]]:
    """``(claims, problems)`` for ``"all"``/None or a comma list; an unknown name is one problem line (with the
    closest known one), the others are still returned."""
    if names is None or names.strip() in ("", "all"):
        return list(CLAIMS), []
    import difflib
    import fnmatch

    by_name = {c.name: c for c in CLAIMS}
    out, problems = [], []
    for item in (t.strip() for t in names.split(",") if t.strip()):
        hits = [n for n in by_name if fnmatch.fnmatchcase(n, "*" if item == "all" else item)]
        if not hits:
            close = difflib.get_close_matches(item, list(by_name), n=1)
            problems.append(f"unknown claim {item!r}" + (f" (did you mean {close[0]}?)" if close else "")
                            + f"; known: {', '.join(by_name)}")
        out += [by_name[n] for n in hits if by_name[n] not in out]
    return out, problems
