"""Training-time flow cache: each training clip's optical flow computed once per run, reused across epochs.

    clip [B, T, C, H, W] --per clip: key = digest(pixels, shape, dtype) + flow settings-->
        hit:  stored flow [T-1, 2, H, W]
        miss: model.flow(missing clips) in one batch, stored while the size bound allows
    --> flow [B, T-1, 2, H, W] (bit-identical to ``model.flow(clip)``)

The flow module has no parameters and the synthetic split is materialised, so the same clip yields the same
flow in every epoch; the two-stream models spent 86-91 % of their training forward recomputing it. The key is
the clip's *content* (BLAKE2 digest of its bytes), so a clip that changes (random augmentation, another
dataset) is simply a miss, never a stale hit; the flow settings (module class, iterations, λ, warps, levels,
min_size, torch version) are part of the key and are checked again when an entry is read, so an entry made
with other settings is never used. Horn–Schunck is batch-independent bit for bit (each frame pair's convs,
warps and updates touch only that pair), so a flow computed in one batch equals the same clip's flow in any
other batch: training with the cache gives identical losses (``tests/bench/test_flow_cache.py``).

Only ``train_and_evaluate`` installs it (``flow_cache_installed``); cost measurements (FLOPs, latency,
memory) never see it, they run the flow inside ``forward``. Memory: a size bound in MiB; once full, new clips
are computed and not stored (keeping the first clips beats evicting: epochs revisit clips in a cycle, which
defeats LRU). Disk (optional ``directory``, so a later run of the same clips starts warm): each entry kept in
memory is also written as ``<key>.pt`` (atomic rename) and read back on a memory miss; a directory that cannot be written (read-only, disk full) turns disk off, memory goes
on. Each of these is noted once in ``FlowCache.notes`` (and ``warnings.warn``) and the run continues.
"""
from __future__ import annotations

import contextlib
import hashlib
import os
import warnings
from pathlib import Path
from typing import Iterator

import torch
from torch import nn

MIB = 1024 * 1024


def flow_settings(module: nn.Module) -> str:
    """What the flow depends on besides the pixels: class, its settings (``extra_repr``), torch version."""
    return f"{type(module).__module__}.{type(module).__qualname__}({module.extra_repr()}) torch={torch.__version__}"


class FlowCache:
    """Flow per clip, keyed by clip content and flow settings; a size bound in MiB, optional disk directory."""

    def __init__(self, max_mib: float = 256.0, directory: str | os.PathLike | None = None) -> None:
        if not max_mib >= 0:
            raise ValueError(f"flow cache size must be >= 0 MiB, got {max_mib!r}")
        self.max_bytes = int(max_mib * MIB)
        self.directory = Path(directory) if directory is not None else None
        self._mem: dict[str, tuple[str, torch.Tensor]] = {}
        self.bytes = 0
        self.hits = self.misses = 0
        self.notes: list[str] = []
        self._full_noted = False
        self.frozen = False  # serve stored fields, store no new ones (clips seen once: the final validation)

    # ---------------------------------------------------------------------------------------------- lookup
    def flow(self, module: nn.Module, clip: torch.Tensor) -> torch.Tensor:
        """``module(clip)`` ``[B, T, C, H, W] -> [B, T-1, 2, H, W]``, stored fields reused."""
        settings = flow_settings(module)
        keys = [self._key(settings, c) for c in clip]
        found = [self._get(settings, k) for k in keys]
        missing = [i for i, f in enumerate(found) if f is None]
        self.hits += len(keys) - len(missing)
        self.misses += len(missing)
        if missing:
            computed = module(clip[missing] if len(missing) < len(keys) else clip).detach()
            for j, i in enumerate(missing):
                found[i] = computed[j]
                self._put(settings, keys[i], computed[j])
            if len(missing) == len(keys):
                return computed
        return torch.stack(found)  # type: ignore[arg-type]

    def stats(self) -> dict[str, object]:
        """Flat record fields: hits, misses, stored MiB, notes."""
        return {"flow_cache_hits": self.hits, "flow_cache_misses": self.misses,
                "flow_cache_mib": self.bytes / MIB, "flow_cache_note": "; ".join(self.notes) or None}

    @staticmethod
    def _key(settings: str, clip: torch.Tensor) -> str:
        h = hashlib.blake2b(digest_size=20)
        h.update(f"{settings}|{tuple(clip.shape)}|{clip.dtype}|{clip.device.type}".encode())
        h.update(clip.detach().contiguous().cpu().view(torch.uint8).numpy().tobytes() if clip.numel() else b"")
        return h.hexdigest()

    def _get(self, settings: str, key: str) -> torch.Tensor | None:
        entry = self._mem.get(key)
        if entry is None and self.directory is not None:
            entry = self._read(key)
            if entry is not None and entry[0] == settings:
                self._store(key, settings, entry[1])
        if entry is None or entry[0] != settings:  # the key includes the settings; checked again anyway
            return None
        return entry[1]

    def _put(self, settings: str, key: str, flow: torch.Tensor) -> None:
        if self.frozen:
            return
        if self._store(key, settings, flow.clone()) and self.directory is not None:  # clone: not a batch view
            self._write(key, settings, flow)

    def _store(self, key: str, settings: str, flow: torch.Tensor) -> bool:
        """Keep ``flow`` in memory if the bound allows; whether it was kept."""
        size = flow.numel() * flow.element_size()
        if self.bytes + size <= self.max_bytes:
            self._mem[key] = (settings, flow)
            self.bytes += size
            return True
        if not self._full_noted:
            self._full_noted = True
            self._note(f"flow cache full at {self.bytes / MIB:.1f} MiB (bound {self.max_bytes / MIB:g} MiB): "
                       "further clips' flow is computed each time")
        return False

    # ------------------------------------------------------------------------------------------------ disk
    def _write(self, key: str, settings: str, flow: torch.Tensor) -> None:
        assert self.directory is not None
        path = self.directory / f"{key}.pt"
        tmp = path.with_suffix(f".tmp{os.getpid()}")
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            torch.save({"settings": settings, "flow": flow.detach().cpu()}, tmp)
            os.replace(tmp, path)
        except (OSError, RuntimeError) as exc:  # read-only, disk full (torch.save raises RuntimeError on ENOSPC)
            with contextlib.suppress(OSError):
                tmp.unlink()
            self._note(f"flow cache directory {self.directory} not writable ({type(exc).__name__}: {exc}); "
                       "disk cache off, memory cache goes on")
            self.directory = None

    def _read(self, key: str) -> tuple[str, torch.Tensor] | None:
        assert self.directory is not None
        path = self.directory / f"{key}.pt"
        if not path.exists():
            return None
        try:
            entry = torch.load(path, map_location="cpu", weights_only=True)
            return entry["settings"], entry["flow"]
        except Exception:  # a torn or foreign file is a miss, never an error
            return None

    def _note(self, message: str) -> None:
        self.notes.append(message)
        warnings.warn(message, RuntimeWarning, stacklevel=3)


class CachedFlow(nn.Module):
    """Stands in for a model's ``flow`` stage: same contract, flow served by a ``FlowCache``.

    A clip that needs a gradient (flow as part of an attack or a saliency map) goes straight to the module.
    """

    def __init__(self, module: nn.Module, cache: FlowCache) -> None:
        super().__init__()
        self.module = module
        self.cache = cache

    def forward(self, clip: torch.Tensor) -> torch.Tensor:
        """``[B, T, C, H, W] -> [B, T-1, 2, H, W]``."""
        if clip.requires_grad and torch.is_grad_enabled():
            return self.module(clip)
        return self.cache.flow(self.module, clip)


def freeze_flow_cache(model: nn.Module) -> None:
    """Stop storing new fields in ``model``'s installed cache (stored ones are still served): for clips seen
    once, such as the final validation split, storing only fills the bound (and said "full" on every
    two-stream model of the default run, after its training had been served)."""
    flow = getattr(model, "flow", None)
    if isinstance(flow, CachedFlow):
        flow.cache.frozen = True


@contextlib.contextmanager
def flow_cache_installed(model: nn.Module, cache: FlowCache | None) -> Iterator[bool]:
    """Inside the block ``model.flow`` is served by ``cache``; yields whether it was installed.

    Models with a flow stage expose it as ``model.flow`` (the two-stream family); others are left alone.
    """
    flow = getattr(model, "flow", None)
    if cache is None or not isinstance(flow, nn.Module) or isinstance(flow, CachedFlow):
        yield False
        return
    model.flow = CachedFlow(flow, cache)
    try:
        yield True
    finally:
        model.flow = flow
