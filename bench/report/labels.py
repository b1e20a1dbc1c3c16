"""Point labels that do not overlap: coincident points share one label, the rest are placed by a greedy search
over 16 directions at growing offsets (with a leader line when far), avoiding points, error bars and each other.
"""
from __future__ import annotations

import textwrap
from typing import Sequence

import numpy as np
from matplotlib.transforms import Bbox

_DIRECTIONS = [(1, 0.6), (1, -0.6), (-1, 0.6), (-1, -0.6), (0, 1), (0, -1), (1, 0), (-1, 0),
               (0.5, 1), (-0.5, 1), (0.5, -1), (-0.5, -1), (1, 1.4), (-1, 1.4), (1, -1.4), (-1, -1.4)]
_RADII = (5, 10, 16, 24, 34, 46, 60, 78, 100, 126)


def _clusters(pts: np.ndarray, labels: Sequence[str], tol: float = 7.0) -> list[tuple[int, str]]:
    """Points closer than ``tol`` pixels share one label ("a, b, c"): coincident models get one readable name
    list instead of a pile of overlapping ones."""
    done = np.zeros(len(pts), bool)
    out = []
    for i in range(len(pts)):
        if done[i]:
            continue
        near = np.flatnonzero(~done & (np.hypot(*(pts - pts[i]).T) <= tol))
        done[near] = True
        names = list(dict.fromkeys(labels[j] for j in near))
        out.append((i, "\n".join(textwrap.wrap(", ".join(names), 36))))
    return out


def place_labels(ax, xs: Sequence[float], ys: Sequence[float], labels: Sequence[str], *, fontsize: float = 7.5,
                 avoid: list[Bbox] | None = None) -> list:
    """Annotate points so that no two labels (nor a label and a point) overlap: coincident points share a label,
    then a greedy search over 16 directions at growing offsets, with a thin leader line once a label sits far
    from its point. Call after the axes limits and the figure layout are final."""
    fig = ax.figure
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    axbox = ax.get_window_extent(renderer)
    pts = ax.transData.transform(np.column_stack([np.asarray(xs, float), np.asarray(ys, float)]))
    occupied = list(avoid or []) + [Bbox.from_bounds(px - 4, py - 4, 8, 8) for px, py in pts]
    texts = []
    groups = sorted(_clusters(pts, labels), key=lambda g: -pts[g[0], 1])
    for i, label in groups:
        x, y = xs[i], ys[i]
        best = None
        for radius in _RADII:
            for dx, dy in _DIRECTIONS:
                ha = "left" if dx > 0 else "right" if dx < 0 else "center"
                va = "bottom" if dy > 0 else "top" if dy < 0 else "center"
                t = ax.annotate(label, (x, y), xytext=(dx * radius, dy * radius), textcoords="offset points",
                                ha=ha, va=va, fontsize=fontsize)
                bb = t.get_window_extent(renderer).expanded(1.04, 1.15)
                inside = axbox.x0 <= bb.x0 and bb.x1 <= axbox.x1 and axbox.y0 <= bb.y0 and bb.y1 <= axbox.y1
                t.remove()
                if inside and not any(bb.overlaps(o) for o in occupied):
                    best = (dx * radius, dy * radius, ha, va, bb, radius)
                    break
            if best:
                break
        if best is None:  # nowhere free: the least-bad spot, smaller
            best = (6, 6, "left", "bottom", None, 0)
        dx, dy, ha, va, bb, radius = best
        arrow = dict(arrowstyle="-", lw=0.5, color="0.45", shrinkA=1, shrinkB=3) if radius >= 16 else None
        t = ax.annotate(label, (x, y), xytext=(dx, dy), textcoords="offset points", ha=ha, va=va,
                        fontsize=fontsize if bb is not None else fontsize - 1.5, arrowprops=arrow, zorder=5,
                        bbox=dict(boxstyle="round,pad=0.1", fc="white", ec="none", alpha=0.75))
        if bb is not None:
            occupied.append(bb)
        texts.append(t)
    return texts
