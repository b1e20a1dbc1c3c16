"""Bayes ceilings of each model family on the synthetic tasks, as data.

They are upper bounds implied by invariance, not promises:

- ``synthetic`` (class = shape x direction, toroidal motion, uniform start): every single frame has the
  same position distribution in every class, so a single-frame model knows the shape but guesses the
  direction (1/4); a clip and its time reversal are equally likely under opposite directions, so an
  order-invariant model (pooling, late fusion) knows the axis but not the sign (1/2).
- ``synthetic-order`` (class = permutation of the same T frames): single-frame and order-invariant
  models see the same multiset of frames in every class (chance, 1/6); a model that computes local
  motion between neighbouring frames and then averages it sees the same multiset of steps for
  out-and-back and back-and-out (5/6); only order-keeping models can reach 1.
- Real datasets have no known ceiling: ``ceiling_for`` returns ``{}``.
"""
from __future__ import annotations

FAMILIES = ("single_frame", "order_invariant", "order_aware", "local_motion")

# dataset -> family -> {"top1": ..., per-attribute accuracy ceilings}; fractions in [0, 1].
CEILINGS: dict[str, dict[str, dict[str, float]]] = {
    "synthetic": {
        "single_frame": {"top1": 1 / 4, "shape": 1.0, "direction": 1 / 4},
        "order_invariant": {"top1": 1 / 2, "shape": 1.0, "direction": 1 / 2},
        # Local motion (frame differences / flow, then averaged) already gives the direction's sign.
        "local_motion": {"top1": 1.0, "shape": 1.0, "direction": 1.0},
        "order_aware": {"top1": 1.0, "shape": 1.0, "direction": 1.0},
    },
    "synthetic-order": {
        "single_frame": {"top1": 1 / 6, "order": 1 / 6},
        "order_invariant": {"top1": 1 / 6, "order": 1 / 6},
        "local_motion": {"top1": 5 / 6, "order": 5 / 6},
        "order_aware": {"top1": 1.0, "order": 1.0},
    },
}

REAL_DATASETS = ("folder", "ucf101", "hmdb51")


def ceiling_for(dataset_name: str, family: str) -> dict[str, float]:
    """The ceiling dict (``"top1"`` plus per-attribute fractions) of ``family`` on ``dataset_name``;
    ``{}`` for real datasets, whose ceilings are unknown."""
    if family not in FAMILIES:
        raise ValueError(f"unknown model family {family!r}; choose from {', '.join(FAMILIES)}")
    from .user import user_datasets

    if dataset_name in REAL_DATASETS or dataset_name in user_datasets():
        return {}
    if dataset_name not in CEILINGS:
        raise ValueError(f"unknown dataset {dataset_name!r}; known: {', '.join([*CEILINGS, *REAL_DATASETS])}")
    return dict(CEILINGS[dataset_name][family])
