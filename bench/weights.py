"""Encoder weights a run writes and reads: ``RunSpec.save_weights`` and ``RunSpec.weights`` paths.

A pre-training is an ordinary point whose ``save_weights`` names where each trained model's encoder goes; a
point whose ``weights`` names the same file starts every model's training encoder from it. Both paths may hold

    {run}    the run directory          {point}  the job's point id (config hash)
    {model}  the job's model            {seed}   the job's seed

so one point serves every seed (``bench study``'s ``late_fusion.pretrained_reuse``: ``docs/study.md``). A file is
written aside and renamed into place, so one that exists is complete, and a resume reuses it.
"""
from __future__ import annotations

import os
import uuid
from pathlib import Path
from typing import Any

PLACEHOLDERS = ("run", "point", "model", "seed")


def resolve(template: str, *, run: str | Path, point: str, model: str, seed: int | str) -> str:
    """``template`` with its placeholders filled in (other braces are left alone: a path may hold them)."""
    out = template
    for name, value in (("run", str(run)), ("point", point), ("model", model), ("seed", str(seed))):
        out = out.replace("{" + name + "}", value)
    return out


def save_atomic(obj: Any, path: str | Path) -> Path:
    """``torch.save(obj)`` to ``path`` through a temp file unique to this process and a rename: a reader sees
    the old file, or the whole new one, never a torn one. ``OSError`` / ``RuntimeError`` (a full disk) propagate."""
    import torch

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        torch.save(obj, tmp)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path
