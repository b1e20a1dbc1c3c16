"""Optical flow as a torch module: Horn–Schunck (notes §5), flow stacking, and an OpenCV reference.

    clip [B, T, C, H, W] --gray (1x1 conv)--> [B*T, 1, H, W] --pyramid (stride-2 conv)--> levels
        per level, coarse to fine, all B*(T-1) frame pairs in one batch (on CPU, large batches in chunks):
        warp I2 by the upsampled flow --derivative conv (depthwise)--> Ix, Iy, It
        --iterations x (replicate pad + 3x3 average conv + a PCG step, or the classic Jacobi update)--> flow
    --> flow [B, T-1, 2, H, W]  (channel 0 = u along x, 1 = v along y, pixels/frame, I1(p) ~ I2(p + flow(p)))
    --stack_flow--> [B, 2L, H, W]

Energy (the notes' λ, grid spacing 1 pixel, intensities in [0, 1]):

    E(u, v) = sum_p (Ix u + Iy v + It)^2 + λ * κ * sum_p [u_p (u_p - ū_p) + v_p (v_p - v̄_p)],   κ = 3

where ū = K * u is the Horn–Schunck neighbourhood average (K: 1/6 on the 4 axis neighbours, 1/12 on the
4 diagonals, 0 in the centre) with replicate padding. Because K is symmetric with rows summing to one, the
second sum equals (1/2) sum_{p,q} K_pq (u_p - u_q)^2, and for a linear field u = g·x it is |g|^2 / 3 per pixel:
κ = 3 makes it the discrete λ ∬ ||∇u||^2 exactly (Horn & Schunck's κ for this kernel). The replicate padding
maps each outside neighbour onto an inside pixel, so K stays symmetric and the boundary is natural (Neumann).

Setting dE/du_p = dE/dv_p = 0 gives the Euler–Lagrange system ``Ix r = λκ (ū - u)``, ``Iy r = λκ (v̄ - v)``
with r = Ix u + Iy v + It. Holding ū, v̄ at the previous iterate and solving the 2x2 system per pixel is the
classic Horn–Schunck (block-)Jacobi update, with α² = λκ = 3λ:

    u <- ū - Ix (Ix ū + Iy v̄ + It) / (α² + Ix² + Iy²)
    v <- v̄ - Iy (Ix ū + Iy v̄ + It) / (α² + Ix² + Iy²)

Each step lowers E: with M the per-pixel 2x2 blocks the update inverts, E(x + δ) - E(x) = -δᵀ(2M - A)δ and
2M - A = data + λκ(I + K) is positive definite because K's eigenvalues lie in [-1/3, 1] (replicate borders
included). ``tests/fusion_models/test_flow.py`` checks K and the monotone decrease.

Solvers (``solver=``): ``"jacobi"`` is the update above, notes §5 (12 sweeps per warp). ``"pcg"``, the default,
solves the same linear system, ``[D + α²(I - K)] w = -It ∇I`` with D = ∇I ∇Iᵀ per pixel, by conjugate gradients
preconditioned with the very 2x2 blocks Jacobi inverts; the system is symmetric positive definite (K symmetric,
eigenvalues in [-1/3, 1]), so CG lowers E at every step and reaches the exact minimiser (tested against a dense
solve). 4 PCG steps per warp gave lower EPE than 12 Jacobi sweeps on every shift and rotation set at 32² and
112² (docs/flow.md), with 5 averaging convs per warp instead of 12.

Coarse to fine: each level linearises brightness constancy around the upsampled flow w0 (I2 warped by w0 with
``grid_sample``) and runs the same update on the *total* flow with It' = It(warped) - Ix u0 - Iy v0, so the
smoothness term always acts on the full flow, as in the single-level energy.

Backends: the pipeline above is the ``"torch"`` backend (any device, differentiable). On CPU the default
(``"auto"``) runs the same pyramid, warps, stencils and solver steps in one fused numba kernel per frame pair
(``fusion_models/_hs_fused.py``, op ``fusionbench::horn_schunck``), 1.7-12x faster than these torch ops at
32-112² and faster than OpenCV's Farneback (docs/flow.md); it agrees with them to float32 rounding (tested)
and reports the same convolution MACs to both FLOP counters.

CPU cost notes of the torch backend (2-core dev box; numbers in ``docs/flow.md``): convolutions dominate; oneDNN's
depthwise conv costs ~100-150 µs a call below 56² whatever the size (per-call overhead), which is why PCG's
fewer steps pay even though each step has more pointwise work. u and
v of all N pairs go through ONE depthwise conv on a [1, 2N, H+2, W+2] view; for 224 fields of 112² that ran
in 2.7 ms, vs 4.1 ms for ``groups=2`` channels-last, ~100 ms for ``groups=2`` NCHW and ~90 ms for a 1-channel
conv on [2N, 1, ...]. For 7 fields of 32² every variant costs ~30-50 µs a call (oneDNN overhead), which is
why the defaults use few iterations with a pyramid and two warps rather than hundreds of single-scale steps.
"""
from __future__ import annotations

import math
import os
from typing import Sequence

import torch
import torch.nn.functional as F
import torch.utils.flop_counter
from torch import nn

__all__ = ["HornSchunck", "stack_flow", "farneback_flow", "frames_to_clip", "GRAY_WEIGHTS", "HS_KAPPA", "SOLVERS",
           "BACKENDS", "fused_unavailable", "flow_cpu_backend", "hs_conv_macs"]

GRAY_WEIGHTS = (0.299, 0.587, 0.114)  # ITU-R BT.601 luma, also what OpenCV's cvtColor(RGB2GRAY) uses
HS_KAPPA = 3.0  # ∇²u ≈ κ(ū - u) for the Horn–Schunck averaging kernel at unit grid spacing
# Solvers of the same Euler–Lagrange system and their default steps per warp: "pcg" reached lower EPE in 4
# steps than "jacobi" (the classic update, notes §5) in 12 on every shift and rotation set (docs/flow.md).
SOLVERS = {"pcg": 4, "jacobi": 12}
CPU_CHUNK_PIXELS = 1 << 18  # flow pixels per CPU pass (~3 clips of T=8 at 112²), see _clips_per_chunk
# Who computes it: "torch" (convs and pointwise torch ops, any device, autograd), "fused" (one numba kernel per
# frame pair, CPU float32; fusion_models/_hs_fused.py), "auto" = fused on CPU where numba imports, else torch.
BACKENDS = ("auto", "torch", "fused")
BACKEND_ENV = "FUSIONBENCH_FLOW_BACKEND"  # the default backend of every HornSchunck built without one (e.g. torch)


def default_backend() -> str:
    """``$FUSIONBENCH_FLOW_BACKEND`` or ``"auto"``: what ``HornSchunck()`` uses when given no backend, so a
    whole run (every two-stream model) can be put on the torch backend without a code change."""
    value = os.environ.get(BACKEND_ENV, "").strip() or "auto"
    if value not in BACKENDS:
        raise ValueError(f"{BACKEND_ENV}={value!r}: must be one of {', '.join(BACKENDS)}")
    return value


def _average_kernel() -> torch.Tensor:
    """Horn–Schunck neighbourhood average ``[1, 1, 3, 3]``: 1/6 axis neighbours, 1/12 diagonals, 0 centre."""
    k = torch.tensor([[1.0, 2.0, 1.0], [2.0, 0.0, 2.0], [1.0, 2.0, 1.0]], dtype=torch.float64) / 12
    return k.view(1, 1, 3, 3)


def _derivative_kernel() -> torch.Tensor:
    """``[3, 2, 5, 5]`` weights mapping the frame pair (I1, I2) to (Ix, Iy, It) in one convolution.

    Ix: the 5-point central difference [1, -8, 0, 8, -1]/12 along x of the mean of the two frames, smoothed by
    the binomial [1, 2, 1]/4 along y (Iy: transposed). It: I2 - I1 smoothed by the 3x3 binomial. Measured at
    32² against a 3-point difference of a fully smoothed image (the textbook-consistent choice) and a 7x7
    consistent 5-point one: this kernel had the lowest EPE on 2-3 px shifts (0.13-0.16 vs 0.13-0.23 px) and the
    same noise robustness, at the 5x5 cost. The spatial gradient is taken on the two-frame mean so it sits at
    the same time instant as It.
    """
    b = torch.tensor([1.0, 2.0, 1.0], dtype=torch.float64) / 4
    d = torch.tensor([1.0, -8.0, 0.0, 8.0, -1.0], dtype=torch.float64) / 12
    dx = torch.outer(F.pad(b, (1, 1)), d)                # rows are y, columns x
    dy = dx.t().contiguous()
    smooth = F.pad(torch.outer(b, b), (1, 1, 1, 1))      # 3x3 support inside 5x5
    w = torch.empty(3, 2, 5, 5, dtype=torch.float64)
    w[0, 0] = w[0, 1] = dx / 2
    w[1, 0] = w[1, 1] = dy / 2
    w[2, 0], w[2, 1] = -smooth, smooth
    return w


class HornSchunck(nn.Module):
    """Horn–Schunck optical flow ``[B, T, C, H, W] -> [B, T-1, 2, H, W]`` (u, v in pixels/frame); no parameters.

    Args:
        iterations: solver steps per warp (fixed, so the cost is the same for every clip); default 4 for
            ``"pcg"``, 12 for ``"jacobi"``.
        lam: the notes' λ (smoothness weight, intensities in [0, 1]); the update uses α² = κλ with κ = 3.
        warps: re-linearisations per pyramid level (warp I2 by the current flow, new derivatives, iterate).
        levels: maximum pyramid levels (1 = the plain single-scale method).
        min_size: a coarser level is only added while its shorter side stays >= ``min_size`` pixels.
        solver: ``"pcg"`` (preconditioned conjugate gradients, default) or ``"jacobi"`` (the classic update),
            both on the same energy.
        chunk_pixels: on CPU, at most this many flow pixels (pairs x H x W) per pass of the torch backend;
            None = the whole batch. Changes speed only, never a bit of the result.
        backend: ``"auto"`` (the fused kernel on CPU where numba imports, torch ops elsewhere), ``"torch"``
            (torch ops: any device, differentiable) or ``"fused"`` (CPU only); None (default) =
            ``$FUSIONBENCH_FLOW_BACKEND``, else ``"auto"``. Both solve the same system with the same stencils
            and agree to float32 rounding (tested); ``cpu_backend`` says which one a CPU call uses.

    Input: float in [0, 1] with C = 3 (RGB, converted to BT.601 luma) or C = 1; uint8 is converted by /255.
    The whole computation is convolutions (counted by FLOP counters), bilinear warps and pointwise ops (the
    luma weighting among them); ``conv_macs(T, H, W)`` gives the convolution MACs of one clip analytically.
    Each frame pair's flow is computed on its own, so a clip's flow is bit-identical in any batch.
    """

    def __init__(self, *, iterations: int | None = None, lam: float = 0.002, warps: int = 2, levels: int = 4,
                 min_size: int = 8, solver: str = "pcg", chunk_pixels: int | None = CPU_CHUNK_PIXELS,
                 backend: str | None = None) -> None:
        super().__init__()
        backend = default_backend() if backend is None else backend
        if solver not in SOLVERS:
            raise ValueError(f"HornSchunck: solver must be one of {', '.join(SOLVERS)}, got {solver!r}")
        if backend not in BACKENDS:
            raise ValueError(f"HornSchunck: backend must be one of {', '.join(BACKENDS)}, got {backend!r}")
        if backend == "fused" and fused_unavailable():
            raise ValueError(f"HornSchunck: backend='fused' needs numba ({fused_unavailable()})")
        if iterations is None:
            iterations = SOLVERS[solver]
        if chunk_pixels is not None and (not isinstance(chunk_pixels, int) or chunk_pixels < 1):
            raise ValueError(f"HornSchunck: chunk_pixels must be an int >= 1 or None, got {chunk_pixels!r}")
        if not isinstance(iterations, int) or iterations < 0:
            raise ValueError(f"HornSchunck: iterations must be an int >= 0, got {iterations!r}")
        if not (isinstance(lam, (int, float)) and math.isfinite(lam) and lam > 0):
            raise ValueError(f"HornSchunck: lam must be a finite float > 0, got {lam!r}")
        if not isinstance(warps, int) or warps < 1:
            raise ValueError(f"HornSchunck: warps must be an int >= 1, got {warps!r}")
        if not isinstance(levels, int) or levels < 1:
            raise ValueError(f"HornSchunck: levels must be an int >= 1, got {levels!r}")
        if not isinstance(min_size, int) or min_size < 4:
            raise ValueError(f"HornSchunck: min_size must be an int >= 4, got {min_size!r}")
        self.iterations = iterations
        self.lam = float(lam)
        self.levels = levels
        self.min_size = min_size
        self.warps = warps
        self.solver = solver
        self.chunk_pixels = chunk_pixels
        self.backend = backend
        if backend != "torch" and not fused_unavailable():
            _fused_warm()  # JIT compile (or load from numba's cache) now, not inside a timed call
        # Buffers (not parameters) so .to(device) moves them; non-persistent to stay out of model state_dicts.
        # Kept in float64 (exact taps for float64 checks) and cast to the compute dtype once per call.
        f64 = torch.float64
        self.register_buffer("gray_weight", torch.tensor(GRAY_WEIGHTS, dtype=f64).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("avg_weight", _average_kernel().to(f64), persistent=False)
        self.register_buffer("deriv_weight", _derivative_kernel().to(f64), persistent=False)
        # The same kernel applied depthwise: Ix, Iy take equal taps on both frames and It opposite ones, so
        # (Ix, Iy, It) = taps ⊛ (I1 + I2, I1 + I2, I2 - I1); one depthwise conv over 3N channels ran 2-3x
        # faster than the dense 2->3 channel conv on the 2-core CPU (at half the MACs).
        w = self.deriv_weight
        self.register_buffer("deriv_taps", torch.stack([w[0, 0], w[1, 0], w[2, 1]]).unsqueeze(1), persistent=False)
        # 4x4 binomial [1, 3, 3, 1]/8 ⊗ itself, stride 2: anti-aliased halving of each pyramid level.
        b = torch.tensor([1.0, 3.0, 3.0, 1.0], dtype=f64) / 8
        self.register_buffer("down_weight", torch.outer(b, b).view(1, 1, 4, 4), persistent=False)

    @property
    def alpha2(self) -> float:
        """α² = κλ: the constant in the Jacobi denominator ``α² + Ix² + Iy²``."""
        return HS_KAPPA * self.lam

    def extra_repr(self) -> str:
        # chunk_pixels is left out: it changes how the work is cut, never a bit of the flow (tested)
        # the CPU backend is shown resolved: the two agree to rounding, not bit for bit, so the training flow
        # cache (which keys on this text and the device) never mixes their fields
        return (f"solver={self.solver}, iterations={self.iterations}, lam={self.lam}, warps={self.warps}, "
                f"levels={self.levels}, min_size={self.min_size}, cpu_backend={self.cpu_backend}")

    @property
    def cpu_backend(self) -> str:
        """What a CPU call computes with: ``"fused(numba X)"`` or ``"torch"``."""
        return flow_cpu_backend(self.backend)

    # ----------------------------------------------------------------------------------------------- input
    def gray(self, clip: torch.Tensor) -> torch.Tensor:
        """Validated luma frames ``[B, T, C, H, W] -> [B*T, 1, H, W]`` in the compute dtype (float32 for uint8/half)."""
        _check_clip(clip)
        return self._gray(clip)

    def _gray(self, clip: torch.Tensor) -> torch.Tensor:
        b, t, c, h, w = clip.shape
        x = clip
        if x.dtype == torch.uint8:
            x = x.float() / 255  # decoders hand out uint8; λ is defined for intensities in [0, 1]
        elif x.dtype in (torch.float16, torch.bfloat16):
            x = x.float()  # derivative products underflow / lose precision in half
        x = x.reshape(b * t, c, h, w)
        if c == 3:
            # Pointwise, not a 1x1 conv: oneDNN picks the 1x1 conv's algorithm by batch size, and its sums
            # differed in the last bit between batches of 8 and 32 frames; everything else here is computed
            # per frame pair, so the flow of a clip is bit-identical in any batch (the training flow cache,
            # bench/flow_cache.py, relies on it). 3 multiply-adds per pixel, not in conv_macs.
            wt = self._weight("gray_weight", x.dtype)
            x = torch.addcmul(torch.addcmul(x[:, 0:1] * wt[:, 0:1], x[:, 1:2], wt[:, 1:2]), x[:, 2:3], wt[:, 2:3])
        return x

    def pyramid_sizes(self, height: int, width: int) -> list[tuple[int, int]]:
        """Level sizes, fine to coarse: halve while the shorter side stays >= ``min_size``, at most ``levels``."""
        sizes = [(height, width)]
        while len(sizes) < self.levels and min(sizes[-1]) // 2 >= self.min_size:
            h, w = sizes[-1]
            sizes.append((h // 2, w // 2))
        return sizes

    # ------------------------------------------------------------------------------------------- forward
    def forward(self, clip: torch.Tensor) -> torch.Tensor:
        """Flow between consecutive frames: ``[B, T, C, H, W] -> [B, T-1, 2, H, W]``."""
        _check_clip(clip)
        # Under AMP the convs would run in half: Ix² + Iy² (~1e-4..1e-2) and α² lose most of their digits.
        with torch.autocast(device_type=clip.device.type, enabled=False):
            if self._fused(clip):
                return self._flow_fused(clip)
            per = self._clips_per_chunk(clip)
            if per >= clip.shape[0]:
                return self._flow(clip)
            return torch.cat([self._flow(clip[i:i + per]) for i in range(0, clip.shape[0], per)])

    def _fused(self, clip: torch.Tensor) -> bool:
        """Whether this call runs the fused kernel (``backend``; a clip that needs a gradient goes to torch)."""
        if self.backend == "torch":
            return False
        wants_grad = clip.requires_grad and torch.is_grad_enabled()
        if self.backend == "fused":
            if clip.device.type != "cpu":
                raise ValueError(f"HornSchunck: backend='fused' runs on CPU, got a clip on {clip.device}")
            if wants_grad:
                raise ValueError("HornSchunck: backend='fused' has no gradient; use backend='torch' for a clip "
                                 "that requires grad")
            return True
        return (clip.device.type == "cpu" and not wants_grad and clip.dtype != torch.float64
                and not fused_unavailable())

    def _flow_fused(self, clip: torch.Tensor) -> torch.Tensor:
        """The fused CPU kernel (``fusion_models/_hs_fused.py``) through the ``fusionbench::horn_schunck`` op."""
        b, t, _, h, w = (int(v) for v in clip.shape)   # int(): under torch.jit.trace (fvcore) sizes are tensors
        gray = self._gray(clip)
        out_dtype = gray.dtype
        frames = gray.to(torch.float32).reshape(b * t, h, w).contiguous()
        flow = _fused_flow(frames, b, t, self.pyramid_sizes(h, w), self.warps, self.iterations, self.alpha2,
                           self.solver == "pcg")
        return flow.view(b, t - 1, 2, h, w).to(out_dtype)

    def _clips_per_chunk(self, clip: torch.Tensor) -> int:
        """Clips per pass on CPU: a batch whose per-iteration tensors outgrow the caches is cut into chunks of
        at most ``chunk_pixels`` flow pixels (pairs x H x W); every pair is solved on its own, so the flow is
        the same bit for bit (tested). Measured at 112², 1 thread: batch 32 in chunks of 2-4 clips ran 1.7x
        faster than in one pass. On GPU the whole batch goes at once."""
        b, t, _, h, w = clip.shape
        if self.chunk_pixels is None or clip.device.type != "cpu" or b <= 1:
            return max(b, 1)
        return max(1, self.chunk_pixels // max(1, (t - 1) * h * w))

    def _flow(self, clip: torch.Tensor) -> torch.Tensor:
        gray = self._gray(clip)
        b, t, _, h, w = clip.shape
        if b == 0:
            return gray.new_zeros(0, t - 1, 2, h, w)
        pyramid = [gray]
        for _ in self.pyramid_sizes(h, w)[1:]:
            pyramid.append(self._down(pyramid[-1]))
        flow = None
        for level in reversed(pyramid):
            frames = level.view(b, t, *level.shape[-2:])
            i1 = frames[:, :-1].reshape(-1, 1, *level.shape[-2:])   # [N, 1, h, w], N = B*(T-1)
            i2 = frames[:, 1:].reshape(-1, 1, *level.shape[-2:])
            if flow is not None:
                flow = _upsample_flow(flow, level.shape[-2:])
            for _ in range(self.warps):
                flow = self._solve(i1, i2 if flow is None else _warp(i2, flow), flow)
        return flow.view(b, t - 1, 2, h, w)

    def _down(self, x: torch.Tensor) -> torch.Tensor:
        """Blur and halve ``[N, 1, H, W] -> [N, 1, H//2, W//2]``."""
        return F.conv2d(F.pad(x, (1, 1, 1, 1), mode="replicate"), self._weight("down_weight", x.dtype), stride=2)

    def derivatives(self, i1: torch.Tensor, i2: torch.Tensor, *, scale: float = 1.0) -> torch.Tensor:
        """``(Ix, Iy, It)`` of frame pairs ``[N, 1, H, W]`` x 2 -> ``[N, 3, H, W]`` (see ``_derivative_kernel``),
        times ``scale`` (folded into the taps)."""
        n, _, h, w = i1.shape
        p = self.deriv_taps.shape[-1] // 2
        both = i1 + i2
        x = F.pad(torch.cat([both, both, i2 - i1], dim=1), (p, p, p, p), mode="replicate")
        taps = self._weight("deriv_taps", x.dtype)
        taps = (taps * scale if scale != 1.0 else taps).repeat(n, 1, 1, 1)     # [3N, 1, 5, 5]
        return F.conv2d(x.view(1, 3 * n, h + 2 * p, w + 2 * p), taps, groups=3 * n).view(n, 3, h, w)

    def _solve(self, i1: torch.Tensor, i2w: torch.Tensor, flow0: torch.Tensor | None) -> torch.Tensor:
        """One level's linearised system, frames ``[N, 1, h, w]``, flow0 ``[N, 2, h, w]`` or None -> flow."""
        return (self._pcg if self.solver == "pcg" else self._jacobi)(i1, i2w, flow0)

    def _pcg(self, i1: torch.Tensor, i2w: torch.Tensor, flow0: torch.Tensor | None) -> torch.Tensor:
        """``iterations`` steps of preconditioned conjugate gradients on the Euler–Lagrange system (module docstring).

        The system ``[D + α²(I - K)] w = -It' ∇I`` (D = ∇I ∇Iᵀ per pixel) divided by α²: with g = ∇I / α and
        c = It' / α it is ``A w = (I - K + g gᵀ) w = -c g``, symmetric positive definite (K symmetric with
        eigenvalues <= 1, tested). Preconditioner: the 2x2 block per pixel that Jacobi inverts, M = I + g gᵀ,
        M⁻¹ = I - g hᵀ with h = g / (1 + |g|²). Each step lowers the energy (CG minimises it over a growing
        Krylov space; tested) and reaches in 4 steps what 12 Jacobi sweeps reach at 1-2 px, at one
        averaging conv per step. Inner products are per frame pair, so pairs stay independent.
        """
        d = self.derivatives(i1, i2w, scale=1.0 / math.sqrt(self.alpha2))   # (Ix, Iy, It) / α
        g, c = d[:, 0:2], d[:, 2:3]                                           # [N, 2, h, w], [N, 1, h, w]
        gu, gv = g[:, 0:1], g[:, 1:2]
        if flow0 is not None:  # linearise around w0
            c = torch.addcmul(c, gu, flow0[:, 0:1], value=-1.0).addcmul_(gv, flow0[:, 1:2], value=-1.0)
        h = g / gu.square().addcmul_(gv, gv).add_(1.0)
        hu, hv = h[:, 0:1], h[:, 1:2]
        weight = self._average_weight(g, laplacian=True)

        def apply_a(p: torch.Tensor) -> torch.Tensor:          # (I - K) p + g (g . p)
            return torch.addcmul(self.average(p, weight), g, torch.addcmul(gu * p[:, 0:1], gv, p[:, 1:2]))

        def precondition(r: torch.Tensor) -> torch.Tensor:     # (I - g h^T) r
            return torch.addcmul(r, g, torch.addcmul(hu * r[:, 0:1], hv, r[:, 1:2]), value=-1.0)

        if self.iterations == 0:
            return torch.zeros_like(g) if flow0 is None else flow0
        r = (g * c).neg_()                                      # b = -c g
        if flow0 is None:
            x = torch.zeros_like(g)
        else:
            x = flow0
            r = r - apply_a(x)
        z = precondition(r)
        p, rz = z, _pair_dot(r, z)
        for k in range(self.iterations):
            q = apply_a(p)
            step = rz / _pair_dot(p, q).clamp_min(_TINY)     # a zero direction (flat frames) gives a zero step
            x = torch.addcmul(x, step, p)
            if k == self.iterations - 1:
                break
            r = torch.addcmul(r, step, q, value=-1.0)
            z = precondition(r)
            rz_next = _pair_dot(r, z)
            p = torch.addcmul(z, rz_next / rz.clamp_min(_TINY), p)
            rz = rz_next
        return x

    def _jacobi(self, i1: torch.Tensor, i2w: torch.Tensor, flow0: torch.Tensor | None) -> torch.Tensor:
        """``iterations`` Jacobi updates on one level: frames ``[N, 1, h, w]``, flow0 ``[N, 2, h, w]`` or None."""
        d = self.derivatives(i1, i2w)
        ix, iy, it = d[:, 0:1], d[:, 1:2], d[:, 2:3]
        if flow0 is not None:
            it = it - ix * flow0[:, 0:1] - iy * flow0[:, 1:2]  # linearise around w0, solve for the total flow
        grad = d[:, 0:2]                                        # [N, 2, h, w] = (Ix, Iy)
        inv = 1.0 / (self.alpha2 + ix * ix + iy * iy)
        gx, gy, c = ix * inv, iy * inv, it * inv                # [N, 1, h, w] each, fixed during the sweep
        flow = flow0 if flow0 is not None else torch.zeros_like(grad)
        weight = self._average_weight(flow)
        for _ in range(self.iterations):
            bar = self.average(flow, weight)
            # s = (Ix ū + Iy v̄ + It) / den;  (u, v) = (ū, v̄) - (Ix, Iy) s. Three fused multiply-adds.
            s = torch.addcmul(torch.addcmul(c, gx, bar[:, 0:1]), gy, bar[:, 1:2])
            flow = torch.addcmul(bar, grad, s, value=-1.0)
        return flow

    def _weight(self, name: str, dtype: torch.dtype) -> torch.Tensor:
        """Buffer ``name`` in ``dtype`` and NCHW layout.

        ``model.to(memory_format=torch.channels_last)`` (latency ``--channels-last``, training option) also
        converts these 4-D buffers; a channels-last weight makes the conv outputs channels-last, and the
        ``[1, 2N, H, W]`` views below need the NCHW layout. The flow is computed in NCHW either way.
        """
        return getattr(self, name).to(dtype).contiguous()

    def _average_weight(self, flow: torch.Tensor, *, laplacian: bool = False) -> torch.Tensor:
        """Depthwise weight for ``average``: K, or ``I - K`` (centre tap 1) with ``laplacian``, one per field."""
        n, c = flow.shape[:2]
        k = self.avg_weight.to(flow.dtype)
        if laplacian:
            k = -k
            k[..., 1, 1] += 1.0
        # contiguous: oneDNN re-packs an expanded (stride-0) weight on every call
        return k.expand(n * c, 1, 3, 3).contiguous()

    def average(self, flow: torch.Tensor, weight: torch.Tensor | None = None) -> torch.Tensor:
        """Neighbourhood average ``[N, 2, H, W] -> [N, 2, H, W]`` (replicate padding) as one depthwise conv.

        All N*2 fields go through ONE conv on a ``[1, 2N, H+2, W+2]`` view: measured on 2 CPU cores this ran
        2-40x faster than ``groups=2`` on ``[N, 2, ...]`` or a 1-channel conv on ``[2N, 1, ...]``.
        """
        n, c, h, w = flow.shape
        weight = self._average_weight(flow) if weight is None else weight
        padded = F.pad(flow, (1, 1, 1, 1), mode="replicate").view(1, n * c, h + 2, w + 2)
        return F.conv2d(padded, weight, groups=n * c).view(n, c, h, w)

    # ----------------------------------------------------------------------------------------- analysis
    def energy(self, clip: torch.Tensor, flow: torch.Tensor) -> torch.Tensor:
        """Single-scale discrete energy E(u, v) (module docstring) of ``flow [B, T-1, 2, H, W]`` -> ``[B, T-1]``."""
        d, f = self._pairs(clip, flow)
        data = (d[:, 0:1] * f[:, 0:1] + d[:, 1:2] * f[:, 1:2] + d[:, 2:3]).square().sum((1, 2, 3))
        smooth = (f * (f - self.average(f))).sum((1, 2, 3))
        return (data + self.alpha2 * smooth).view(clip.shape[0], clip.shape[1] - 1)

    def residual(self, clip: torch.Tensor, flow: torch.Tensor) -> torch.Tensor:
        """Flow-constraint residual ``Ix u + Iy v + It`` (single scale) ``-> [B, T-1, H, W]``."""
        d, f = self._pairs(clip, flow)
        b, t, _, h, w = clip.shape
        return (d[:, 0] * f[:, 0] + d[:, 1] * f[:, 1] + d[:, 2]).view(b, t - 1, h, w)

    def _pairs(self, clip: torch.Tensor, flow: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Derivatives ``[Ix, Iy, It]`` of every consecutive frame pair ``[B(T-1), 3, H, W]`` and the flow of each
        pair ``[B(T-1), 2, H, W]``, in the derivatives' dtype."""
        b, t, _, h, w = clip.shape
        frames = self.gray(clip).view(b, t, h, w)
        d = self.derivatives(frames[:, :-1].reshape(-1, 1, h, w), frames[:, 1:].reshape(-1, 1, h, w))
        return d, flow.reshape(-1, 2, h, w).to(d.dtype)

    def conv_macs(self, frames: int, height: int, width: int, channels: int = 3) -> int:
        """Convolution multiply-accumulates of one clip ``[1, T, C, H, W]``, as FLOP counters count them.

        The torch backend's convolutions, counted by the counters themselves; the fused kernel does the
        same stencil work and its op reports this number to both counters (``hs_conv_macs``)."""
        return hs_conv_macs(frames, self.pyramid_sizes(height, width), self.warps, self.iterations,
                            self.solver == "pcg")


def hs_conv_macs(frames: int, sizes: Sequence[tuple[int, int]], warps: int, iterations: int, pcg: bool) -> int:
    """Convolution MACs of one clip of ``frames`` frames with pyramid level ``sizes`` (fine to coarse)."""
    macs = 0                                                                         # luma: pointwise (_gray)
    for h, w in sizes[1:]:
        macs += frames * h * w * 16                                                  # 4x4 stride-2 blur
    pairs = frames - 1
    for level, (h, w) in enumerate(reversed(sizes)):                                 # coarse to fine
        macs += warps * pairs * h * w * 3 * 25                                       # derivative conv (depthwise)
        if not pcg:
            convs = warps * iterations
        else:  # one A-product per step, plus the initial residual wherever a flow0 exists (all but the first solve)
            convs = warps * iterations + (warps - (level == 0) if iterations else 0)
        macs += convs * pairs * h * w * 2 * 9                                        # averaging conv
    return macs


# ------------------------------------------------------------------------------------- the fused backend
_FUSED_ERROR: list[str | None] = []   # memo of fused_unavailable(): [] = not tried yet


def fused_unavailable() -> str | None:
    """None where the fused kernel can run (numba imports), else why not (one line)."""
    if not _FUSED_ERROR:
        try:
            import numba  # noqa: F401

            _FUSED_ERROR.append(None)
        except Exception as exc:  # ImportError, or a numba that fails to load its LLVM
            _FUSED_ERROR.append(f"numba not importable: {type(exc).__name__}: {exc}")
    return _FUSED_ERROR[0]


def flow_cpu_backend(backend: str | None = None) -> str:
    """What ``HornSchunck(backend=backend)`` computes with on CPU here: ``"fused(numba X)"`` or ``"torch"``
    (None: the default backend, ``$FUSIONBENCH_FLOW_BACKEND`` or "auto")."""
    backend = default_backend() if backend is None else backend
    if backend == "torch" or fused_unavailable():
        return "torch"
    import numba

    return f"fused(numba {numba.__version__})"


def _fused_warm() -> None:
    """Compile the fused kernel once per process (numba caches it on disk: ~20 s the first time on a
    machine, ~1-2 s to load afterwards), so no training or latency timer of a model pays for it."""
    if _FUSED_WARM:
        return
    # On the CPU explicitly (a module built under ``with torch.device("meta")`` would otherwise run only the
    # fake kernel), from a local generator (it runs inside model builders, between seeded initialisations:
    # it must not draw from the global RNG), and marked done only once it ran.
    frames = torch.rand(4, 8, 8, generator=torch.Generator().manual_seed(0), device="cpu")
    for pcg in (True, False):
        _fused_flow(frames, 2, 2, [(8, 8), (4, 4)], 1, 1, 0.006, pcg)
    _FUSED_WARM.append(True)


_FUSED_WARM: list[bool] = []


def _fused_flow(frames: torch.Tensor, clips: int, length: int, sizes: Sequence[tuple[int, int]], warps: int,
                iterations: int, alpha2: float, pcg: bool) -> torch.Tensor:
    """Flow ``[clips*(length-1), 2, H, W]`` of luma ``frames [clips*length, H, W]`` (float32, CPU) through the
    ``fusionbench::horn_schunck`` op, pyramid levels ``sizes`` fine to coarse. The pyramid and each worker's
    scratch are allocated here as torch tensors, so the live-tensor memory measurement sees the working set."""
    from . import _hs_fused

    _, h, w = (int(v) for v in frames.shape)   # int(): under torch.jit.trace (fvcore) sizes are tensors
    workers = max(1, min(_fused_threads(), clips * (length - 1)))
    pyramid = frames.new_empty(_hs_fused.pyramid_floats(clips * length, sizes))
    scratch = frames.new_empty(workers, _hs_fused.scratch_floats(h, w))
    return torch.ops.fusionbench.horn_schunck(frames, pyramid, scratch, clips, length,
                                              [v for hw in sizes for v in hw], warps, iterations, alpha2, pcg)


def _fused_threads() -> int:
    """Workers for the fused kernel: torch's intra-op threads (what --threads sets), within numba's pool."""
    import numba

    n = max(1, min(torch.get_num_threads(), numba.config.NUMBA_NUM_THREADS))
    numba.set_num_threads(n)
    return n


@torch.library.custom_op("fusionbench::horn_schunck", mutates_args=("pyramid", "scratch"), device_types="cpu")
def _horn_schunck_op(frames: torch.Tensor, pyramid: torch.Tensor, scratch: torch.Tensor, clips: int, length: int,
                     sizes: list[int], warps: int, iterations: int, alpha2: float, pcg: bool) -> torch.Tensor:
    """Flow ``[clips*(length-1), 2, H, W]`` of luma ``frames [clips*length, H, W]`` (float32, CPU)."""
    import numpy as np

    from . import _hs_fused

    _, h, w = frames.shape
    out = frames.new_empty(clips * (length - 1), 2, h, w)
    hs = np.asarray(sizes[0::2], dtype=np.int64)
    ws = np.asarray(sizes[1::2], dtype=np.int64)
    _fused_threads()
    _hs_fused.horn_schunck_flow(frames.numpy(), clips, length, hs, ws, warps, iterations, alpha2, pcg,
                                pyramid.numpy(), scratch.numpy(), out.numpy())
    return out


@_horn_schunck_op.register_fake
def _(frames, pyramid, scratch, clips, length, sizes, warps, iterations, alpha2, pcg):
    return frames.new_empty(clips * (length - 1), 2, frames.shape[-2], frames.shape[-1])


def _horn_schunck_op_macs(frames: int, clips: int, length: int, sizes: Sequence[int], warps: int,
                          iterations: int, pcg: bool) -> int:
    """MACs of one op call (what the torch backend's convolutions would count): clips x per-clip MACs."""
    levels = list(zip(sizes[0::2], sizes[1::2]))
    return clips * hs_conv_macs(length, levels, warps, iterations, pcg)


@torch.utils.flop_counter.register_flop_formula(torch.ops.fusionbench.horn_schunck)
def _horn_schunck_flop(frames_shape, pyramid_shape, scratch_shape, clips, length, sizes, warps, iterations,
                       alpha2, pcg, *args, out_shape=None, **kwargs) -> int:
    """FlopCounterMode's unit: 2 x MACs (our own op, so registered globally: every counter sees it)."""
    return 2 * _horn_schunck_op_macs(frames_shape[0], clips, length, sizes, warps, iterations, pcg)


_TINY = 1e-30  # below any non-zero float32 inner product of a frame pair; guards 0/0 on flat frames


def _pair_dot(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Inner product per frame pair ``[N, 2, h, w] x 2 -> [N, 1, 1, 1]``."""
    return torch.linalg.vecdot(a.flatten(1), b.flatten(1)).view(-1, 1, 1, 1)


def _check_clip(clip: torch.Tensor) -> None:
    """Raise ``ValueError`` unless ``clip`` is a finite ``[B, T>=2, C in {1,3}, H>=2, W>=2]`` float or uint8 tensor."""
    if not isinstance(clip, torch.Tensor):
        raise ValueError(f"HornSchunck: expected a torch.Tensor clip [B, T, C, H, W], got {type(clip).__name__}")
    if clip.dim() != 5:
        raise ValueError(f"HornSchunck: expected a clip of rank 5 [B, T, C, H, W], got shape {tuple(clip.shape)}")
    b, t, c, h, w = clip.shape
    if t < 2:
        raise ValueError(f"HornSchunck: flow needs at least 2 frames, got T={t} (shape {tuple(clip.shape)})")
    if c not in (1, 3):
        raise ValueError(f"HornSchunck: expected C=1 (gray) or C=3 (RGB) at dim 2, got C={c} (shape {tuple(clip.shape)})")
    if h < 2 or w < 2:
        raise ValueError(f"HornSchunck: frames must be at least 2x2 pixels, got {h}x{w}")
    if clip.dtype != torch.uint8 and not clip.is_floating_point():
        raise ValueError(f"HornSchunck: expected a float clip in [0, 1] or uint8 in [0, 255], got dtype {clip.dtype}")
    if clip.is_floating_point() and not bool(torch.isfinite(clip).all()):
        raise ValueError("HornSchunck: clip contains NaN or Inf pixels; flow of such frames is undefined")


def _upsample_flow(flow: torch.Tensor, size: Sequence[int]) -> torch.Tensor:
    """Bilinear resize of ``[N, 2, h, w]`` to ``size`` with u, v rescaled to the new pixel units."""
    h, w = flow.shape[-2:]
    up = F.interpolate(flow, size=tuple(size), mode="bilinear", align_corners=False)
    scale = torch.tensor([size[1] / w, size[0] / h], dtype=flow.dtype, device=flow.device).view(1, 2, 1, 1)
    return up * scale


def _warp(image: torch.Tensor, flow: torch.Tensor) -> torch.Tensor:
    """``image [N, 1, H, W]`` sampled at ``p + flow(p)`` (bilinear, border clamped) -> ``[N, 1, H, W]``."""
    n, _, h, w = image.shape
    ys = torch.arange(h, dtype=flow.dtype, device=flow.device)
    xs = torch.arange(w, dtype=flow.dtype, device=flow.device)
    # align_corners=True: -1 and 1 are the centres of the first and last pixel, so x_norm = 2x/(W-1) - 1.
    gx = (xs.view(1, 1, w) + flow[:, 0]) * (2 / max(w - 1, 1)) - 1
    gy = (ys.view(1, h, 1) + flow[:, 1]) * (2 / max(h - 1, 1)) - 1
    grid = torch.stack([gx, gy], dim=-1)
    return F.grid_sample(image, grid, mode="bilinear", padding_mode="border", align_corners=True)


def stack_flow(flow: torch.Tensor, length: int | None = None, *, bound: float | None = None,
               subtract_mean: bool = False) -> torch.Tensor:
    """Stack L consecutive flow fields as channels: ``[B, T-1, 2, H, W] -> [B, 2L, H, W]`` (u1, v1, u2, v2, ...).

    The L fields are the ones centred in the clip (start ``(T-1-L)//2``). Normalisation: each field may first
    have its spatial mean removed (``subtract_mean``, Simonyan & Zisserman's camera-motion compensation), then
    it is divided by ``bound`` pixels/frame and clamped to [-1, 1]. The default bound, ``max(H, W) / 8``,
    scales with resolution so the same motion maps to the same values at 32² (4 px) and 112² (14 px).
    """
    if not isinstance(flow, torch.Tensor) or flow.dim() != 5 or flow.shape[2] != 2:
        shape = tuple(flow.shape) if isinstance(flow, torch.Tensor) else type(flow).__name__
        raise ValueError(f"stack_flow: expected flow [B, T-1, 2, H, W], got {shape}")
    # int(): under torch.jit.trace (fvcore) sizes are 0-d tensors
    b, n, h, w = (int(flow.shape[i]) for i in (0, 1, 3, 4))
    if length is None:
        length = n
    elif isinstance(length, bool) or not isinstance(length, int) or not 1 <= length <= n:
        raise ValueError(f"stack_flow: length must be an int in [1, {n}] (the clip has {n} flow fields), got {length!r}")
    bound = max(h, w) / 8 if bound is None else bound
    if not bound > 0:
        raise ValueError(f"stack_flow: bound must be > 0 pixels/frame, got {bound!r}")
    start = (n - length) // 2
    x = flow[:, start:start + length]
    if subtract_mean:
        x = x - x.mean(dim=(-2, -1), keepdim=True)
    return (x / bound).clamp(-1.0, 1.0).reshape(b, 2 * length, h, w)


def frames_to_clip(frames: Sequence[torch.Tensor]) -> torch.Tensor:
    """A list of frames ``[C, H, W]`` -> clip ``[1, T, C, H, W]``; frames of different shapes raise ``ValueError``."""
    if len(frames) == 0:
        raise ValueError("frames_to_clip: no frames")
    shapes = {tuple(f.shape) for f in frames}
    if len(shapes) != 1:
        raise ValueError(f"frames_to_clip: all frames must have the same [C, H, W] shape, got {sorted(shapes)}")
    if len(next(iter(shapes))) != 3:
        raise ValueError(f"frames_to_clip: expected frames of rank 3 [C, H, W], got shape {next(iter(shapes))}")
    return torch.stack(list(frames)).unsqueeze(0)


def farneback_flow(clip: torch.Tensor, *, pyr_scale: float = 0.5, levels: int = 3, winsize: int = 15,
                   iterations: int = 3, poly_n: int = 5, poly_sigma: float = 1.2) -> torch.Tensor:
    """OpenCV Farneback reference flow, same contract: ``[B, T, C, H, W] -> [B, T-1, 2, H, W]`` float32 on CPU.

    Frames go through the same BT.601 luma and are rounded to uint8 (Farneback's input type). Defaults are
    the OpenCV tutorial's. A Python loop over pairs: this is the reference, not the module under test.
    """
    import cv2  # optional at import time: only the reference needs OpenCV
    import numpy as np

    _check_clip(clip)
    x = clip.detach().to("cpu")
    x = x.float() / 255 if x.dtype == torch.uint8 else x.float()
    if x.shape[2] == 3:
        x = (x * torch.tensor(GRAY_WEIGHTS).view(1, 1, 3, 1, 1)).sum(2)
    else:
        x = x[:, :, 0]
    frames = (x.clamp(0, 1) * 255).round().to(torch.uint8).numpy()   # [B, T, H, W]
    b, t, h, w = frames.shape
    out = np.empty((b, t - 1, 2, h, w), dtype=np.float32)
    for i in range(b):
        for j in range(t - 1):
            f = cv2.calcOpticalFlowFarneback(frames[i, j], frames[i, j + 1], None, pyr_scale, levels, winsize,
                                             iterations, poly_n, poly_sigma, 0)
            out[i, j] = f.transpose(2, 0, 1)
    return torch.from_numpy(out)
