"""Flow measurements: synthetic scenes with exact flow, EPE, throughput and robustness tables.

    scene generator -> (clip [B, T, C, H, W], flow_gt [B, T-1, 2, H, W]) -> HornSchunck / Farneback -> EPE
    flow_throughput(...)  -> DataFrame of ThroughputRecord (flow fields/s, median and IQR of timed blocks)
    flow_robustness(...)  -> DataFrame of RobustnessRecord (EPE vs noise sigma and vs camera pan)

Library code: returns records and frames, never prints. The scenes are analytic (sums of sinusoids evaluated
at moved coordinates), so the ground-truth flow is exact, sub-pixel motion included, with no resampling error.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Callable, Iterable, Sequence

import pandas as pd
import torch

from fusion_models.flow import HornSchunck, farneback_flow

METHODS = ("horn_schunck", "farneback")


# ------------------------------------------------------------------------------------------------ scenes
def _texture(x: torch.Tensor, y: torch.Tensor, *, size: int, seed: int, channels: int) -> torch.Tensor:
    """Smooth random texture at float coordinates ``x, y [..., H, W]`` -> ``[..., C, H, W]`` in [0, 1].

    Six sinusoids with wavelengths between size/5 and size/2.5 pixels (>= 6 px at 32²), so derivatives are
    well resolved, plus a per-channel tint so RGB -> luma is not trivial.
    """
    g = torch.Generator().manual_seed(seed)
    out = torch.full_like(x, 0.5)
    for _ in range(6):
        wavelength = size / (2.5 + 2.5 * torch.rand((), generator=g).item())
        angle = 2 * math.pi * torch.rand((), generator=g).item()
        phase = 2 * math.pi * torch.rand((), generator=g).item()
        k = 2 * math.pi / wavelength
        out = out + 0.07 * torch.sin(k * (math.cos(angle) * x + math.sin(angle) * y) + phase)
    tint = 0.8 + 0.4 * torch.rand(channels, generator=g)
    return (out.unsqueeze(-3) * tint.view(channels, 1, 1)).clamp(0, 1)


def _grid(size: int) -> tuple[torch.Tensor, torch.Tensor]:
    ys, xs = torch.meshgrid(torch.arange(size, dtype=torch.float64), torch.arange(size, dtype=torch.float64),
                            indexing="ij")
    return xs, ys


def moving_texture(size: int = 32, motion: tuple[float, float] = (0.5, 0.25), *, frames: int = 2, seed: int = 0,
                   channels: int = 3) -> tuple[torch.Tensor, torch.Tensor]:
    """A texture translating by ``motion = (u, v)`` px/frame -> clip ``[1, T, C, S, S]``, flow ``[1, T-1, 2, S, S]``."""
    xs, ys = _grid(size)
    u, v = motion
    clip = torch.stack([_texture(xs - t * u, ys - t * v, size=size, seed=seed, channels=channels)
                        for t in range(frames)])
    flow = torch.tensor([u, v], dtype=torch.float64).view(1, 2, 1, 1).expand(frames - 1, 2, size, size)
    return clip.unsqueeze(0).float(), flow.unsqueeze(0).float()


def rotating_texture(size: int = 32, degrees: float = 3.0, *, frames: int = 2, seed: int = 0,
                     channels: int = 3) -> tuple[torch.Tensor, torch.Tensor]:
    """A texture rotating ``degrees``/frame about the image centre -> clip ``[1, T, C, S, S]``, flow ``[1, T-1, 2, S, S]``."""
    xs, ys = _grid(size)
    c = (size - 1) / 2
    dx, dy = xs - c, ys - c
    th = math.radians(degrees)
    clip = []
    for t in range(frames):
        a = -t * th  # frame t shows the texture rotated by t*th: sample the texture at R(-t th)(p - c)
        clip.append(_texture(math.cos(a) * dx - math.sin(a) * dy + c, math.sin(a) * dx + math.cos(a) * dy + c,
                             size=size, seed=seed, channels=channels))
    # p moves to R(th)(p - c) + c: the flow is the same for every frame pair
    u = math.cos(th) * dx - math.sin(th) * dy - dx
    v = math.sin(th) * dx + math.cos(th) * dy - dy
    flow = torch.stack([u, v]).expand(frames - 1, 2, size, size)
    return torch.stack(clip).unsqueeze(0).float(), flow.unsqueeze(0).float()


def sprite_over_pan(size: int = 32, *, pan: float = 1.0, sprite_motion: tuple[float, float] = (1.5, 1.0),
                    frames: int = 2, seed: int = 0, channels: int = 3) -> tuple[torch.Tensor, torch.Tensor]:
    """A textured square (side size/3) moving by ``sprite_motion`` over a background panning by (``pan``, 0).

    The camera pan moves the background; ground truth is the sprite's motion inside it and the pan outside.
    Returns clip ``[1, T, C, S, S]`` and flow ``[1, T-1, 2, S, S]``.
    """
    xs, ys = _grid(size)
    side, start = size / 3, size / 3
    su, sv = sprite_motion
    clip, flows = [], []
    for t in range(frames):
        bg = _texture(xs - t * pan, ys, size=size, seed=seed, channels=channels)
        sx, sy = xs - start - t * su, ys - start - t * sv      # sprite-local coordinates
        fg = _texture(sx, sy, size=size, seed=seed + 1, channels=channels)
        # soft edge (logistic, ~1 px wide) so sub-pixel sprite positions render without aliasing
        mask = (torch.sigmoid(4 * sx) * torch.sigmoid(4 * (side - sx)) * torch.sigmoid(4 * sy)
                * torch.sigmoid(4 * (side - sy)))
        clip.append(mask * fg + (1 - mask) * bg)
        if t < frames - 1:
            inside = mask > 0.5
            flows.append(torch.stack([torch.where(inside, su, pan), torch.where(inside, sv, 0.0)]))
    return torch.stack(clip).unsqueeze(0).float(), torch.stack(flows).unsqueeze(0).float()


def add_noise(clip: torch.Tensor, sigma: float, *, seed: int = 0) -> torch.Tensor:
    """``clip`` plus i.i.d. Gaussian noise of std ``sigma`` (intensity units), clamped to [0, 1]; same shape."""
    g = torch.Generator().manual_seed(seed)
    return (clip + sigma * torch.randn(clip.shape, generator=g)).clamp(0, 1)


def epe(flow: torch.Tensor, truth: torch.Tensor, *, border: int = 0) -> float:
    """Average end-point error (pixels) between ``[..., 2, H, W]`` fields, ignoring ``border`` pixels per side."""
    if border:
        flow = flow[..., border:-border, border:-border]
        truth = truth[..., border:-border, border:-border]
    return float((flow.float() - truth.float()).square().sum(-3).sqrt().mean())


def default_methods(**hs_kwargs) -> dict[str, Callable[[torch.Tensor], torch.Tensor]]:
    """The two compared estimators, ``clip [B, T, C, H, W] -> flow [B, T-1, 2, H, W]``."""
    hs = HornSchunck(**hs_kwargs)

    def horn_schunck(clip: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return hs(clip)

    return {"horn_schunck": horn_schunck, "farneback": farneback_flow}


# ------------------------------------------------------------------------------------------- robustness
@dataclass(frozen=True)
class RobustnessRecord:
    """One EPE measurement: ``method`` on a ``scene`` perturbed by ``factor`` = ``value``."""

    method: str
    factor: str        # "noise_sigma" (intensity units, frames in [0, 1]) | "pan_px" | "shift_px" (px/frame) | "rotation_deg"
    value: float
    scene: str
    size: int
    epe_px: float      # mean end-point error over the frame minus `border` px per side
    border: int


def flow_robustness(*, size: int = 32, sigmas: Sequence[float] = (0.0, 0.01, 0.02, 0.05, 0.1),
                    pans: Sequence[float] = (0.0, 1.0, 2.0, 4.0), shifts: Sequence[float] = (),
                    rotations: Sequence[float] = (), seeds: Iterable[int] = (0, 1, 2), border: int = 3,
                    methods: dict[str, Callable[[torch.Tensor], torch.Tensor]] | None = None) -> pd.DataFrame:
    """EPE vs Gaussian noise sigma and vs camera pan (and optionally vs a pure shift), averaged over ``seeds``.

    Noise: a texture moving (1.5, 1.0) px/frame plus noise of std sigma. Pan: ``sprite_over_pan`` with the
    background moving (pan, 0). Shift: a texture translated by (s, s/2). Rotation: a texture rotating by r
    degrees/frame about the centre. One row per (method, factor, value).
    """
    methods = default_methods() if methods is None else methods
    seeds = tuple(seeds)
    scenes: list[tuple[str, float, str, Callable[[int], tuple[torch.Tensor, torch.Tensor]]]] = []
    for s in sigmas:
        scenes.append(("noise_sigma", s, "texture(1.5,1.0)",
                       lambda seed, s=s: _noisy(moving_texture(size, (1.5, 1.0), seed=seed), s, seed)))
    for p in pans:
        scenes.append(("pan_px", p, "sprite(1.5,1.0)+pan",
                       lambda seed, p=p: sprite_over_pan(size, pan=p, seed=seed)))
    for s in shifts:
        scenes.append(("shift_px", s, "texture(s,s/2)", lambda seed, s=s: moving_texture(size, (s, s / 2), seed=seed)))
    for r in rotations:
        scenes.append(("rotation_deg", r, "texture rotating", lambda seed, r=r: rotating_texture(size, r, seed=seed)))
    records = []
    for factor, value, scene, make in scenes:
        pairs = [make(seed) for seed in seeds]
        for name, fn in methods.items():
            errs = [epe(fn(clip), truth, border=border) for clip, truth in pairs]
            records.append(RobustnessRecord(name, factor, float(value), scene, size, sum(errs) / len(errs), border))
    return pd.DataFrame([asdict(r) for r in records])


def _noisy(pair: tuple[torch.Tensor, torch.Tensor], sigma: float, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    clip, flow = pair
    return (add_noise(clip, sigma, seed=seed) if sigma > 0 else clip), flow


# ------------------------------------------------------------------------------------------- throughput
@dataclass(frozen=True)
class ThroughputRecord:
    """Flow fields per second for one (method, device, size, batch); timings are per call on the whole batch."""

    method: str
    device: str
    size: int
    batch: int              # clips per call
    frames: int             # T per clip; each clip gives T-1 flow fields
    fields: int             # flow fields per call = batch * (T - 1)
    fields_per_s: float     # fields / median call time
    ms_per_call_p50: float
    ms_per_call_iqr: float
    runs: int               # timed blocks behind the median
    threads: int            # torch intra-op threads, and OpenCV's pool size during the Farneback runs
    impl: str = ""          # what computed it: the HS backend ("fused(numba X)" / "torch") or "opencv X"
    epe_px: float = float("nan")  # mean EPE at this size on the shift 0.5-3 px and 3° rotation scenes (EPE_SCENES)


# The scenes behind the throughput table's EPE column: translations (s, s/2) and a rotation, 3 seeds each.
EPE_SHIFTS = (0.5, 1.0, 2.0, 3.0)
EPE_ROTATIONS = (3.0,)


def flow_throughput(sizes: Sequence[int] = (32, 64, 112), batches: Sequence[int] = (1, 32), device: str = "cpu", *,
                    frames: int = 8, min_run_time_s: float = 0.5, farneback: bool = True,
                    hs_kwargs: dict | None = None, threads: int | None = None,
                    backends: Sequence[str] = ("auto",), epe: bool = True) -> pd.DataFrame:
    """Throughput (flow fields/s) of HornSchunck on ``device`` and Farneback (CPU) on ``[batch, frames, 3, S, S]``.

    Timing uses ``torch.utils.benchmark`` (one warm-up call, then blocked runs for at least ``min_run_time_s``;
    median and IQR). On CUDA the timer synchronises. A failing size (e.g. OOM) becomes a record with NaN rates.
    ``threads`` (default: torch's current count) is applied to torch and OpenCV alike, so both methods get
    the same cores; on a shared machine ``threads=1`` gives the steadiest comparison. ``backends``: one
    Horn–Schunck row per backend (``"auto"``, ``"torch"``, ``"fused"``). ``epe``: each row also carries the
    method's mean EPE at that size on the shift and rotation scenes (``EPE_SHIFTS``, ``EPE_ROTATIONS``), so
    speed is never read without accuracy.
    """
    import cv2
    from torch.utils import benchmark as tb

    flows = {f"horn_schunck:{b}": HornSchunck(**{**(hs_kwargs or {}), "backend": b}).to(device) for b in backends}
    threads = torch.get_num_threads() if threads is None else int(threads)
    cv_threads = cv2.getNumThreads()
    cv2.setNumThreads(threads)
    try:
        return _throughput(flows, sizes, batches, device, frames, min_run_time_s, farneback, threads, tb, epe)
    finally:
        cv2.setNumThreads(cv_threads)


def _impl(hs: HornSchunck, device: str) -> str:
    return hs.cpu_backend if str(device) == "cpu" else "torch"   # the fused kernel runs on CPU only


def mean_epe_at(size: int, fn: Callable[[torch.Tensor], torch.Tensor]) -> float:
    """Mean EPE (px) of ``fn`` at ``size`` over the throughput table's scenes (``EPE_SHIFTS``, ``EPE_ROTATIONS``)."""
    df = flow_robustness(size=size, sigmas=(), pans=(), shifts=EPE_SHIFTS, rotations=EPE_ROTATIONS,
                         methods={"m": fn})
    return float(df["epe_px"].mean())


def _throughput(flows: dict[str, HornSchunck], sizes: Sequence[int], batches: Sequence[int], device: str,
                frames: int, min_run_time_s: float, farneback: bool, threads: int, tb, epe: bool) -> pd.DataFrame:
    import cv2

    records = []
    for size in sizes:
        errors: dict[str, float] = {}
        if epe:
            for key, hs in flows.items():
                errors[key] = mean_epe_at(size, lambda c, hs=hs: _no_grad(hs, c.to(device)).cpu())
            if farneback:
                errors["farneback"] = mean_epe_at(size, farneback_flow)
        for batch in batches:
            clip = torch.rand(batch, frames, 3, size, size, generator=torch.Generator().manual_seed(size + batch))
            runs: list[tuple[str, str, str, Callable[[], object]]] = []
            dev_clip = clip.to(device)
            for key, hs in flows.items():
                runs.append((key, str(device), _impl(hs, device), lambda c=dev_clip, hs=hs: _no_grad(hs, c)))
            if farneback:
                runs.append(("farneback", "cpu", f"opencv {cv2.__version__}", lambda c=clip: farneback_flow(c)))
            for key, dev, impl, fn in runs:
                method = key.split(":")[0]
                fields = batch * (frames - 1)
                try:
                    fn()  # burn-in: allocator, oneDNN primitive caches
                    m = tb.Timer(stmt="fn()", globals={"fn": fn}, num_threads=threads).blocked_autorange(
                        min_run_time=min_run_time_s)
                    med, iqr, n = m.median, m.iqr, len(m.times)
                except RuntimeError:  # OOM on a device: keep the row, mark it unmeasured
                    med, iqr, n = float("nan"), float("nan"), 0
                records.append(ThroughputRecord(method, dev, size, batch, frames, fields, fields / med,
                                                1e3 * med, 1e3 * iqr, n, threads, impl,
                                                errors.get(key, float("nan"))))
    return pd.DataFrame([asdict(r) for r in records])


def _no_grad(module: torch.nn.Module, clip: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        out = module(clip)
    if out.is_cuda:
        torch.cuda.synchronize()
    return out
