"""Horn–Schunck flow: contract, bad input, equations against hand computations, accuracy vs Farneback.

EPE tolerances are ~1.5-2x the values measured on the dev box (noted next to each), so a real regression
(wrong sign, wrong scale, a broken pyramid) fails while float noise does not.
"""
from __future__ import annotations


from pathlib import Path

import numpy as np
import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from bench.flowbench import add_noise, epe, moving_texture, rotating_texture
from fusion_models.flow import HornSchunck, farneback_flow, frames_to_clip, stack_flow

REPO = Path(__file__).resolve().parents[2]

BORDER = 3  # content enters/leaves through the frame edge; EPE is taken on the interior


@pytest.fixture(autouse=True)
def _no_grad():
    with torch.no_grad():
        yield


# ------------------------------------------------------------------------------------------ contract
def test_shape_defaults_and_no_parameters():
    hs = HornSchunck()
    clip = torch.rand(2, 8, 3, 32, 32)
    flow = hs(clip)
    assert flow.shape == (2, 7, 2, 32, 32) and flow.dtype == torch.float32
    assert torch.isfinite(flow).all()
    assert hs.solver == "pcg" and hs.iterations == 4 and hs.lam == 0.002 and hs.alpha2 == pytest.approx(0.006)
    assert HornSchunck(solver="jacobi").iterations == 12
    assert list(hs.parameters()) == []
    assert hs.state_dict() == {}  # buffers are non-persistent: models embedding it keep their state_dicts
    gray = hs(clip.mean(2, keepdim=True))  # C = 1 works too
    assert gray.shape == (2, 7, 2, 32, 32)


def test_batch_pairs_are_independent():
    """Folding B*(T-1) pairs into one batch must not mix them: each clip's flow equals its solo run."""
    hs = HornSchunck()
    clip = torch.rand(3, 4, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    together = hs(clip)
    alone = torch.cat([hs(clip[i:i + 1]) for i in range(3)])
    torch.testing.assert_close(together, alone, rtol=1e-5, atol=1e-5)


def test_autocast_and_empty_batch():
    """AMP must not push the solver into half precision; an empty batch gives an empty flow."""
    clip = torch.rand(1, 3, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    hs = HornSchunck()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        amp = hs(clip)
    assert amp.dtype == torch.float32
    torch.testing.assert_close(amp, hs(clip))
    assert hs(torch.rand(0, 4, 3, 16, 16)).shape == (0, 3, 2, 16, 16)


def test_uint8_is_divided_by_255():
    clip = (torch.rand(1, 3, 3, 16, 16, generator=torch.Generator().manual_seed(0)) * 255).round()
    hs = HornSchunck()
    torch.testing.assert_close(hs(clip.to(torch.uint8)), hs(clip / 255))


@pytest.mark.parametrize(
    "clip, match",
    [
        (torch.rand(8, 3, 32, 32), "rank 5"),
        (torch.rand(1, 1, 3, 32, 32), "at least 2 frames"),
        (torch.rand(1, 4, 2, 32, 32), "C=1"),
        (torch.rand(1, 4, 4, 32, 32), "C=1"),
        (torch.zeros(1, 4, 3, 32, 32, dtype=torch.int64), "dtype"),
        (torch.zeros(1, 4, 3, 1, 32), "2x2"),
        (np.zeros((1, 4, 3, 32, 32), dtype=np.float32), "torch.Tensor"),
    ],
    ids=["rank4", "one_frame", "two_channels", "four_channels", "int64", "one_row", "numpy"],
)
def test_bad_input_raises(clip, match):
    with pytest.raises(ValueError, match=match):
        HornSchunck()(clip)


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
def test_non_finite_pixels_raise(bad):
    clip = torch.rand(1, 3, 3, 16, 16)
    clip[0, 1, 2, 5, 7] = bad
    with pytest.raises(ValueError, match="NaN or Inf"):
        HornSchunck()(clip)
    with pytest.raises(ValueError, match="NaN or Inf"):
        farneback_flow(clip)


def test_frames_of_different_sizes_raise():
    with pytest.raises(ValueError, match="same"):
        frames_to_clip([torch.rand(3, 32, 32), torch.rand(3, 32, 30)])
    assert frames_to_clip([torch.rand(3, 8, 8)] * 4).shape == (1, 4, 3, 8, 8)


@pytest.mark.parametrize("kwargs", [{"iterations": -1}, {"lam": 0.0}, {"lam": float("nan")}, {"warps": 0},
                                    {"levels": 0}, {"min_size": 2}])
def test_bad_hyperparameters_raise(kwargs):
    with pytest.raises(ValueError):
        HornSchunck(**kwargs)


# ------------------------------------------------------------------------------------------ stacking
def test_stack_flow_order_centre_and_normalisation():
    b, n, h, w = 2, 7, 4, 8
    flow = torch.arange(n, dtype=torch.float32).view(1, n, 1, 1, 1).expand(b, n, 2, h, w).clone()
    flow[:, :, 1] *= -1  # v = -index, so channel order is visible
    out = stack_flow(flow, bound=100.0)
    assert out.shape == (b, 2 * n, h, w)
    assert out[0, :, 0, 0].tolist() == pytest.approx([x / 100 for i in range(n) for x in (i, -i)])
    mid = stack_flow(flow, length=3, bound=100.0)  # fields 2, 3, 4 of 0..6
    assert mid[0, :, 0, 0].tolist() == pytest.approx([0.02, -0.02, 0.03, -0.03, 0.04, -0.04])
    even = stack_flow(flow, length=2, bound=100.0)  # start (7 - 2) // 2 = 2
    assert even[0, ::2, 0, 0].tolist() == pytest.approx([0.02, 0.03])
    clamped = stack_flow(flow)  # default bound max(H, W)/8 = 1 px: |values| clamp to 1
    assert clamped.abs().max() == 1.0 and clamped[0, 2, 0, 0] == 1.0
    centred = stack_flow(flow + torch.randn(b, n, 2, h, w), subtract_mean=True, bound=1e3)
    assert centred.mean((-2, -1)).abs().max() < 1e-6


@pytest.mark.parametrize("length", [0, 8, 2.5])
def test_stack_flow_bad_length(length):
    with pytest.raises(ValueError, match="length"):
        stack_flow(torch.zeros(1, 7, 2, 4, 4), length=length)


def test_stack_flow_bad_shape():
    with pytest.raises(ValueError, match=r"\[B, T-1, 2, H, W\]"):
        stack_flow(torch.zeros(1, 7, 3, 4, 4))


# ------------------------------------------------------------------------------- equations by hand
def _hand_derivatives(i1: np.ndarray, i2: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Ix, Iy, It by explicit loops: 5-point difference along the axis, [1,2,1]/4 across; It 3x3 binomial."""
    d = np.array([1, -8, 0, 8, -1]) / 12
    b = np.array([1, 2, 1]) / 4
    h, w = i1.shape
    m = np.pad((i1 + i2) / 2, 2, mode="edge")
    dt = np.pad(i2 - i1, 2, mode="edge")
    ix, iy, it = np.zeros((h, w)), np.zeros((h, w)), np.zeros((h, w))
    for y in range(h):
        for x in range(w):
            for j in range(3):          # smoothing offset across the derivative axis
                for k in range(5):      # derivative offset
                    ix[y, x] += b[j] * d[k] * m[y + 1 + j, x + k]
                    iy[y, x] += b[j] * d[k] * m[y + k, x + 1 + j]
            for j in range(3):
                for k in range(3):
                    it[y, x] += b[j] * b[k] * dt[y + 1 + j, x + 1 + k]
    return ix, iy, it


def _hand_average(u: np.ndarray) -> np.ndarray:
    """Horn–Schunck ū: 1/6 per axis neighbour, 1/12 per diagonal, edges replicated."""
    p = np.pad(u, 1, mode="edge")
    out = np.zeros_like(u)
    for y in range(u.shape[0]):
        for x in range(u.shape[1]):
            out[y, x] = (p[y, x + 1] + p[y + 2, x + 1] + p[y + 1, x] + p[y + 1, x + 2]) / 6 + (
                p[y, x] + p[y, x + 2] + p[y + 2, x] + p[y + 2, x + 2]) / 12
    return out


def _hand_jacobi(sweeps: int = 2, lam: float = 0.05):
    """Two random 5x6 frames and ``sweeps`` Jacobi updates of the notes' equation computed by hand."""
    rng = np.random.default_rng(0)
    i1, i2 = rng.random((5, 6)), rng.random((5, 6))
    alpha2 = 3 * lam  # κ = 3
    ix, iy, it = _hand_derivatives(i1, i2)
    u, v = np.zeros_like(i1), np.zeros_like(i1)
    for _ in range(sweeps):
        ub, vb = _hand_average(u), _hand_average(v)
        t = (ix * ub + iy * vb + it) / (alpha2 + ix ** 2 + iy ** 2)
        u, v = ub - ix * t, vb - iy * t
    return i1, i2, lam, u, v


def test_jacobi_updates_match_hand_computation():
    i1, i2, lam, u, v = _hand_jacobi()
    clip = torch.from_numpy(np.stack([i1, i2])).view(1, 2, 1, 5, 6)  # float64 end to end
    flow = HornSchunck(solver="jacobi", iterations=2, lam=lam, warps=1, levels=1)(clip)
    np.testing.assert_allclose(flow[0, 0, 0].numpy(), u, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(flow[0, 0, 1].numpy(), v, rtol=1e-10, atol=1e-12)


def test_derivatives_of_a_ramp_are_its_slopes():
    ys, xs = torch.meshgrid(torch.arange(9.0), torch.arange(10.0), indexing="ij")
    i1 = (0.03 * xs - 0.02 * ys).view(1, 1, 9, 10)
    d = HornSchunck().derivatives(i1, i1 + 0.01)
    inner = d[0, :, 2:-2, 2:-2]  # away from the replicated edge
    torch.testing.assert_close(inner[0], torch.full_like(inner[0], 0.03))
    torch.testing.assert_close(inner[1], torch.full_like(inner[1], -0.02))
    torch.testing.assert_close(d[0, 2], torch.full_like(d[0, 2], 0.01))


def test_depthwise_derivatives_equal_the_dense_kernel():
    """The depthwise form (taps on I1 + I2 and I2 - I1) is the documented [3, 2, 5, 5] kernel, exactly."""
    from fusion_models.flow import _derivative_kernel

    w = _derivative_kernel()
    torch.testing.assert_close(w[0, 0], w[0, 1])
    torch.testing.assert_close(w[1, 0], w[1, 1])
    torch.testing.assert_close(w[2, 0], -w[2, 1])
    g = torch.Generator().manual_seed(0)
    i1, i2 = torch.rand(3, 1, 9, 11, generator=g, dtype=torch.float64), torch.rand(3, 1, 9, 11, generator=g, dtype=torch.float64)
    dense = torch.nn.functional.conv2d(torch.nn.functional.pad(torch.cat([i1, i2], 1), (2, 2, 2, 2), mode="replicate"), w)
    torch.testing.assert_close(HornSchunck().double().derivatives(i1, i2), dense, rtol=1e-12, atol=1e-14)


def test_average_kernel_is_symmetric_and_stochastic():
    """Energy ↔ update consistency rests on K (with replicate padding) being symmetric with unit row sums."""
    hs = HornSchunck().double()
    h, w = 4, 5
    eye = torch.eye(h * w, dtype=torch.float64).view(h * w, 1, h, w).expand(h * w, 2, h, w)
    k = hs.average(eye.contiguous())[:, 0].reshape(h * w, h * w)  # row i = K applied to basis vector i
    torch.testing.assert_close(k, k.t())
    torch.testing.assert_close(k.sum(1), torch.ones(h * w, dtype=torch.float64))
    # eigenvalues in [-1/3, 1] make 2M - A = data + λκ(I + K) positive definite: Jacobi cannot raise E
    eig = torch.linalg.eigvalsh(k)
    assert eig.min() > -1 / 3 - 1e-9 and eig.max() < 1 + 1e-9


@pytest.mark.parametrize("solver, steps", [("jacobi", range(0, 61, 3)), ("pcg", range(0, 13))])
def test_energy_decreases_monotonically(solver, steps):
    """Each Jacobi step lowers E (2M - A is positive definite); CG minimises E over nested Krylov spaces."""
    clip, _ = moving_texture(32, (0.6, -0.3), seed=1)
    clip = clip.double()
    hs = HornSchunck(solver=solver, warps=1, levels=1)
    energies = []
    for k in steps:
        hs.iterations = k
        energies.append(hs.energy(clip, hs(clip)).item())
    diffs = np.diff(energies)
    assert (diffs < 0).all(), energies
    assert energies[-1] < 0.5 * energies[0]  # measured 1.093 -> 0.0101 after 60 Jacobi updates; CG: 0.0301 after 4, 0.0101 after 12


@pytest.mark.parametrize("solver, steps", [("jacobi", (0, 5, 20, 80)), ("pcg", (0, 2, 4, 16))])
def test_constraint_residual_decreases_with_iterations(solver, steps):
    clip, _ = moving_texture(32, (0.6, -0.3), seed=1)
    hs = HornSchunck(solver=solver, warps=1, levels=1)
    rms = []
    for k in steps:
        hs.iterations = k
        rms.append(hs.residual(clip, hs(clip)).square().mean().sqrt().item())
    # measured: jacobi [0.0327, 0.0058, 0.0026, 0.0021], pcg [0.0327, 0.0055, 0.0035, 0.0021]
    assert all(a > b for a, b in zip(rms, rms[1:])), rms
    assert rms[-1] < 0.15 * rms[0]


def _dense_system(hs: HornSchunck, i1: torch.Tensor, i2: torch.Tensor):
    """The Euler–Lagrange system of one frame pair as a dense matrix: ``[D + α²(I - K)] w = -It ∇I``.

    Built from the hand stencil (_hand_derivatives, _hand_average), not from the module's own convolutions.
    """
    ix, iy, it = (torch.from_numpy(a) for a in _hand_derivatives(i1.numpy(), i2.numpy()))
    n = ix.numel()
    eye = np.eye(n).reshape(n, *ix.shape)
    k = torch.from_numpy(np.stack([_hand_average(e).ravel() for e in eye]))  # row j = K applied to basis j
    k = k.t()
    ix, iy, it = ix.ravel(), iy.ravel(), it.ravel()
    a = torch.zeros(2 * n, 2 * n, dtype=torch.float64)
    lap = hs.alpha2 * (torch.eye(n, dtype=torch.float64) - k)
    a[:n, :n] = torch.diag(ix * ix) + lap
    a[n:, n:] = torch.diag(iy * iy) + lap
    a[:n, n:] = a[n:, :n] = torch.diag(ix * iy)
    b = -torch.cat([it * ix, it * iy])
    return a, b


def test_pcg_solves_the_euler_lagrange_system():
    """PCG to convergence = the dense solve of the notes' system; Jacobi converges to the same field."""
    rng = np.random.default_rng(3)
    base = rng.random((7, 8))
    i1 = torch.from_numpy(base)
    i2 = torch.from_numpy(np.roll(base, 1, axis=1) * 0.7 + 0.3 * base)
    lam = 0.05
    hs = HornSchunck(solver="pcg", iterations=200, lam=lam, warps=1, levels=1)
    a, b = _dense_system(hs, i1, i2)
    exact = torch.linalg.solve(a, b).view(2, 7, 8)
    clip = torch.stack([i1, i2]).view(1, 2, 1, 7, 8)
    torch.testing.assert_close(hs(clip)[0, 0], exact, rtol=1e-8, atol=1e-10)
    jac = HornSchunck(solver="jacobi", iterations=20000, lam=lam, warps=1, levels=1)(clip)[0, 0]
    torch.testing.assert_close(jac, exact, rtol=1e-6, atol=1e-8)
    # the preconditioner is the 2x2 block per pixel that the Jacobi update inverts
    assert torch.linalg.eigvalsh(a).min() > 0  # SPD: CG applies


def test_pcg_of_flat_frames_is_zero_without_nans():
    clip = torch.full((2, 4, 3, 16, 16), 0.5)
    flow = HornSchunck()(clip)
    assert torch.equal(flow, torch.zeros_like(flow))


def test_bad_solver_raises():
    with pytest.raises(ValueError, match="solver must be one of pcg, jacobi"):
        HornSchunck(solver="sor")
    with pytest.raises(ValueError, match="chunk_pixels"):
        HornSchunck(chunk_pixels=0)


def test_cpu_chunks_give_the_same_flow_bit_for_bit():
    clip = torch.rand(5, 4, 3, 24, 24, generator=torch.Generator().manual_seed(0))
    whole = HornSchunck(chunk_pixels=None, backend="torch")(clip)
    for px in (1, 3 * 24 * 24 * 2, 3 * 24 * 24 * 3):  # 1 clip, 2 clips and 3 clips (a ragged tail) per pass
        assert torch.equal(HornSchunck(chunk_pixels=px, backend="torch")(clip), whole), px


def test_flop_counter_sees_the_convolutions():
    hs = HornSchunck()
    with FlopCounterMode(display=False) as counter:
        hs(torch.rand(1, 8, 3, 32, 32))
    assert counter.get_total_flops() == 2 * hs.conv_macs(8, 32, 32)
    # measured 0.99 MMAC per frame pair at 32² by default, small next to a ~5 MMAC/frame CNN
    assert hs.conv_macs(8, 32, 32) / 7 < 1.5e6


@pytest.mark.parametrize("backend, op", [("torch", "conv"), ("fused", "horn_schunck")])
def test_fvcore_traces_flow_and_stacking(backend, op):
    """fvcore traces with torch.jit (sizes become tensors): flow + stack_flow must trace and count the convs
    (the torch backend's own convolutions; the fused op reports the same number through its handle)."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # fvcore's import touches the deprecated torch.jit.script
        from fvcore.nn import FlopCountAnalysis

    class Stream(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.flow = HornSchunck(iterations=3, backend=backend)

        def forward(self, clip: torch.Tensor) -> torch.Tensor:
            return stack_flow(self.flow(clip))

    from bench.measure.flop_handlers import horn_schunck_macs_jit

    model = Stream()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # TracerWarnings from the input checks
        counts = FlopCountAnalysis(model, (torch.rand(1, 4, 3, 16, 16),))
        counts.set_op_handle("fusionbench::horn_schunck", horn_schunck_macs_jit)  # what count_flops adds
        counts.unsupported_ops_warnings(False)
        by_op = counts.by_operator()
    assert by_op[op] == model.flow.conv_macs(4, 16, 16)  # fvcore counts one MAC per multiply-add


# ------------------------------------------------------------------------------------------ accuracy
# Measured EPE (px, interior, seed 0; ours with defaults / Farneback with OpenCV tutorial defaults):
@pytest.mark.parametrize(
    "motion, ours_tol, farneback_tol",
    [
        ((0.5, 0.25), 0.12, 0.04),    # measured 0.058 / 0.015
        ((1.0, 0.0), 0.10, 0.02),     # measured 0.044 / 0.004
        ((2.0, -1.0), 0.12, 0.04),    # measured 0.049 / 0.017
        ((0.3, 1.7), 0.30, 0.05),     # measured 0.178 / 0.023
    ],
)
def test_translation_epe(motion, ours_tol, farneback_tol):
    clip, truth = moving_texture(32, motion, seed=0)
    ours = epe(HornSchunck()(clip), truth, border=BORDER)
    ref = epe(farneback_flow(clip), truth, border=BORDER)
    assert ours < ours_tol, (ours, ref)
    assert ref < farneback_tol, (ours, ref)
    still = epe(torch.zeros_like(truth), truth, border=BORDER)
    assert ours < 0.2 * still  # far from the zero field (measured ratio <= 0.10)


def test_rotation_epe():
    clip, truth = rotating_texture(32, 3.0, seed=0)  # up to 0.8 px at the corners
    ours = epe(HornSchunck()(clip), truth, border=BORDER)
    ref = epe(farneback_flow(clip), truth, border=BORDER)
    # measured: ours 0.082, Farneback 0.25 (its 15 px window averages across the rotating field)
    assert ours < 0.14, ours
    assert ref < 0.35, ref


def test_pyramid_recovers_large_motion():
    clip, truth = moving_texture(32, (3.0, -1.5), seed=0)
    coarse_to_fine = epe(HornSchunck()(clip), truth, border=BORDER)
    single = epe(HornSchunck(levels=1)(clip), truth, border=BORDER)
    # measured: 0.12 with the pyramid, 1.05 single-scale (the linearisation breaks beyond ~1 px)
    assert coarse_to_fine < 0.3 and single > 2 * coarse_to_fine, (coarse_to_fine, single)


def test_odd_non_square_frames():
    """Pyramid levels of 33x47 are 16x23 and 8x11: upsampling must rescale u and v by their own axis ratio."""
    clip, truth = moving_texture(48, (1.2, -0.7), seed=0)
    clip, truth = clip[..., :33, :47], truth[..., :33, :47]
    ours = epe(HornSchunck()(clip), truth, border=BORDER)
    assert ours < 0.15, ours  # measured 0.053 (0.058 on the full 48x48)


def test_gradients_flow_through():
    """No in-place ops on the autograd path: a model may backpropagate into the clip (e.g. saliency)."""
    with torch.enable_grad():
        clip = torch.rand(1, 3, 3, 16, 16, requires_grad=True)
        HornSchunck(iterations=2).forward(clip).square().sum().backward()
    assert clip.grad is not None and torch.isfinite(clip.grad).all()


def test_noise_degrades_gracefully():
    clip, truth = moving_texture(32, (1.5, 1.0), seed=0)
    errs = [epe(HornSchunck()(add_noise(clip, s) if s else clip), truth, border=BORDER) for s in (0.0, 0.05)]
    # measured: 0.16 clean, 0.30 at sigma 0.05 (the texture's own contrast is ~0.1)
    assert errs[0] < errs[1] < 0.45, errs


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_cuda_matches_cpu():
    clip = moving_texture(64, (1.2, 0.4), frames=4)[0]
    hs = HornSchunck()
    torch.testing.assert_close(hs.cuda()(clip.cuda()).cpu(), hs.cpu()(clip), rtol=1e-3, atol=1e-3)


# ------------------------------------------------------------------------------- bench.flowbench API
def test_flowbench_tables_have_the_documented_columns():
    """Smoke test of the library functions behind docs/flow.md (tiny sizes; timings are not asserted)."""
    from bench.flowbench import flow_robustness, flow_throughput

    rob = flow_robustness(size=16, sigmas=(0.0, 0.05), pans=(0.0, 1.0), seeds=(0,), border=2)
    assert set(rob["method"]) == {"horn_schunck", "farneback"}
    assert set(rob["factor"]) == {"noise_sigma", "pan_px"} and len(rob) == 8
    assert rob["epe_px"].between(0, 10).all()
    tput = flow_throughput(sizes=(16,), batches=(1,), frames=3, min_run_time_s=0.01, threads=1)
    assert list(tput["method"]) == ["horn_schunck", "farneback"] and (tput["fields"] == 2).all()
    assert (tput["fields_per_s"] > 0).all() and (tput["threads"] == 1).all()


@pytest.mark.parametrize("backend", ["torch", "fused"])
@pytest.mark.parametrize("frames,size", [(4, 16), (4, 32), (8, 32)])
def test_flow_of_a_clip_is_bit_identical_in_any_batch(frames, size, backend):
    """The training flow cache (bench/flow_cache.py) reuses a clip's flow computed in another batch."""
    torch.manual_seed(0)
    hs = HornSchunck(backend=backend)
    x = torch.rand(9, frames, 3, size, size)
    full = hs(x)
    for idx in ([0], [0, 1], [3, 4, 5, 6], [8, 0, 5]):
        assert torch.equal(hs(x[idx]), full[idx]), idx


# ------------------------------------------------------------------------------------- fused backend
# The fused CPU kernel (fusion_models/_hs_fused.py) solves the same system with the same stencils as the
# torch backend, whose equations the tests above check by hand; here: the fused kernel against both.
def test_default_cpu_backend_is_the_fused_kernel():
    hs = HornSchunck()
    assert hs.backend == "auto" and hs.cpu_backend.startswith("fused(numba ")
    assert "cpu_backend=fused" in repr(hs)  # the flow cache keys on it: the backends never share entries
    assert HornSchunck(backend="torch").cpu_backend == "torch"


@pytest.mark.parametrize("solver", ["pcg", "jacobi"])
@pytest.mark.parametrize("size, kwargs", [
    ((32, 32), {}),
    ((112, 112), {}),
    ((23, 37), {}),                                   # odd, non-square: pyramid 23x37 -> 11x18
    ((32, 32), {"levels": 1, "warps": 1}),
    ((32, 32), {"warps": 3, "iterations": 1}),
    ((16, 16), {"iterations": 0}),
    ((40, 24), {"lam": 0.01, "min_size": 4}),
])
def test_fused_matches_the_torch_backend(solver, size, kwargs):
    h, w = size
    clip, _ = moving_texture(max(h, w), (1.3, -0.7), frames=4, seed=2)
    clip = torch.cat([clip, rotating_texture(max(h, w), 3.0, frames=4, seed=5)[0]])[..., :h, :w].contiguous()
    ref = HornSchunck(solver=solver, backend="torch", **kwargs)(clip)
    fused = HornSchunck(solver=solver, backend="fused", **kwargs)(clip)
    assert fused.dtype == ref.dtype == torch.float32 and fused.shape == ref.shape
    # float32 rounding in another summation order; the motion is ~1.5 px
    torch.testing.assert_close(fused, ref, rtol=0, atol=2e-4)


@pytest.mark.parametrize("make", [lambda c: (c * 255).round().to(torch.uint8), lambda c: c.mean(2, keepdim=True),
                                  lambda c: c.half(), lambda c: c.double()],
                         ids=["uint8", "gray", "half", "float64"])
def test_fused_input_kinds_match_the_torch_backend(make):
    clip = make(moving_texture(24, (0.8, 0.4), frames=3, seed=1)[0])
    ref = HornSchunck(backend="torch")(clip)
    fused = HornSchunck(backend="fused")(clip)
    assert fused.dtype == ref.dtype
    torch.testing.assert_close(fused, ref, rtol=0, atol=2e-4)


def test_fused_jacobi_matches_hand_computation():
    i1, i2, lam, u, v = _hand_jacobi()
    clip = torch.from_numpy(np.stack([i1, i2])).view(1, 2, 1, 5, 6).float()
    flow = HornSchunck(solver="jacobi", iterations=2, lam=lam, warps=1, levels=1, backend="fused")(clip)
    np.testing.assert_allclose(flow[0, 0, 0].numpy(), u, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(flow[0, 0, 1].numpy(), v, rtol=1e-4, atol=1e-6)


def test_fused_pcg_solves_the_euler_lagrange_system():
    rng = np.random.default_rng(3)
    base = rng.random((7, 8))
    i1 = torch.from_numpy(base)
    i2 = torch.from_numpy(np.roll(base, 1, axis=1) * 0.7 + 0.3 * base)
    hs = HornSchunck(solver="pcg", iterations=60, lam=0.05, warps=1, levels=1, backend="fused")
    a, b = _dense_system(hs, i1, i2)
    exact = torch.linalg.solve(a, b).view(2, 7, 8).float()
    clip = torch.stack([i1, i2]).view(1, 2, 1, 7, 8).float()
    torch.testing.assert_close(hs(clip)[0, 0], exact, rtol=1e-3, atol=1e-4)


@pytest.mark.parametrize("solver, steps", [("jacobi", range(0, 31, 3)), ("pcg", range(0, 7))])
def test_fused_energy_decreases_monotonically(solver, steps):
    clip, _ = moving_texture(32, (0.6, -0.3), seed=1)
    hs = HornSchunck(solver=solver, warps=1, levels=1, backend="fused")
    energies = []
    for k in steps:
        hs.iterations = k
        energies.append(hs.energy(clip.double(), hs(clip).double()).item())
    assert (np.diff(energies) < 0).all(), energies


def test_fused_flat_frames_give_zero_flow():
    flow = HornSchunck(backend="fused")(torch.full((2, 4, 3, 16, 16), 0.5))
    assert torch.equal(flow, torch.zeros_like(flow))


def test_fused_refuses_what_it_cannot_do():
    with pytest.raises(ValueError, match="backend must be one of auto, torch, fused"):
        HornSchunck(backend="numba")
    with torch.enable_grad():
        clip = torch.rand(1, 3, 3, 16, 16, requires_grad=True)
        with pytest.raises(ValueError, match="no gradient"):
            HornSchunck(backend="fused")(clip)
        # "auto" sends a clip that needs a gradient to the torch backend
        assert HornSchunck()(clip).requires_grad


def test_fused_scratch_is_seen_by_the_memory_measurement():
    """The kernel's pyramid and per-worker scratch are torch tensors, so the live-tensor peak includes them."""
    from bench.measure.memory import measure_memory
    from fusion_models import _hs_fused

    clip = torch.rand(1, 4, 3, 32, 32)
    hs = HornSchunck(backend="fused")
    peak = measure_memory(hs, clip).peak_mem_mib
    sizes = hs.pyramid_sizes(32, 32)
    floats = _hs_fused.pyramid_floats(4, sizes) + _hs_fused.scratch_floats(32, 32) + 3 * 2 * 32 * 32
    assert peak * 2 ** 20 >= floats * 4


def test_backend_env_puts_every_default_module_on_torch(monkeypatch):
    """$FUSIONBENCH_FLOW_BACKEND sets the backend of every HornSchunck built without one (a whole run)."""
    from bench.results import environment

    monkeypatch.setenv("FUSIONBENCH_FLOW_BACKEND", "torch")
    hs = HornSchunck()
    assert hs.backend == "torch" and hs.cpu_backend == "torch" and "cpu_backend=torch" in repr(hs)
    assert HornSchunck(backend="fused").cpu_backend.startswith("fused")  # an explicit backend wins
    assert environment()["flow_cpu_backend"] == "torch"
    monkeypatch.setenv("FUSIONBENCH_FLOW_BACKEND", "cuda")
    with pytest.raises(ValueError, match="FUSIONBENCH_FLOW_BACKEND='cuda': must be one of auto, torch, fused"):
        HornSchunck()
    assert environment()["flow_cpu_backend"].startswith("invalid (")


def test_first_module_of_a_process_leaves_the_global_rng_alone():
    """The fused kernel's warm-up runs inside model builders, between seeded initialisations: it must not draw
    from the global RNG (it did, so the first two-stream model of a process got other head weights)."""
    import subprocess
    import sys

    code = ("import torch; from fusion_models.flow import HornSchunck; torch.manual_seed(0); {} "
            "print(torch.rand(1).item())")
    out = [subprocess.run([sys.executable, "-c", code.format(pre)], capture_output=True, text=True, check=True,
                          cwd=REPO).stdout
           for pre in ("HornSchunck(backend='fused');", "")]
    assert out[0] == out[1]


def test_fused_out_of_range_input_gives_non_finite_flow_not_an_exception():
    """Intensities far outside [0, 1] overflow; the torch backend returns NaN, the fused kernel must not raise
    from inside its parallel loop (it did: SystemError from a ZeroDivisionError) nor index outside a frame."""
    clip = torch.rand(1, 3, 1, 32, 32, generator=torch.Generator().manual_seed(0)) * 1e4
    flow = HornSchunck(backend="fused")(clip)
    assert flow.shape == (1, 2, 2, 32, 32)


def test_warm_up_under_the_meta_device_still_compiles_for_cpu():
    """A module built under ``torch.device("meta")`` (the report's parameter sweep) must not mark the kernel
    warm after running only the fake kernel."""
    import subprocess
    import sys

    code = ("import torch; from fusion_models.flow import HornSchunck; from fusion_models import _hs_fused\n"
            "with torch.device('meta'): HornSchunck()\n"
            "print(len(_hs_fused.horn_schunck_flow.signatures))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=REPO).stdout
    assert int(out.strip()) >= 1


def test_provenance_names_the_torch_backend_on_a_gpu_run():
    from bench.results import _flow_cpu_backend

    assert _flow_cpu_backend("cpu").startswith("fused(numba ")
    assert _flow_cpu_backend("cuda:0").startswith("torch (on cuda:0; fused(numba ")
