"""Fused CPU kernel of ``HornSchunck`` (numba): the same pyramid, warps, derivatives and solvers, one frame
pair at a time, every stage a loop over one pair's pixels instead of a torch op over the batch.

    frames [F, H, W] float32 (luma)                           F = B*T
      --pyramid (per frame, in parallel)--> levels, fine to coarse
      --per pair (in parallel), coarse to fine:
            upsample the flow, then `warps` x (warp I2, derivatives, `iterations` PCG or Jacobi steps)
      --> flow [B*(T-1), 2, H, W]

Why it exists: the torch path issues ~1,400 small ops per call (each a oneDNN/OpenMP dispatch of a few to
150 µs at these sizes), so at 32-112² it is bound by dispatch, not arithmetic (docs/flow.md). Here a frame
pair's whole computation stays in one thread and in that core's cache. It solves the same discrete system
with the same stencils, so the flow agrees with the torch path to float32 rounding (tested); the sums are
taken in another order, so the two are not bit-identical. Each pair is computed by the same code on its own
buffers whatever the batch, so a clip's flow is bit-identical in any batch (the training flow cache relies
on it; tested).

Out-of-range input: the warp clamps a NaN coordinate (a diverged flow) into the frame, so intensities far
outside [0, 1] give non-finite flow as on the torch backend, never an index outside a frame (which raised a
SystemError from the parallel loop before; tested).

Layout: every field lives in a buffer padded by one pixel on each side (two for the derivative input),
whose border is refreshed by replication before a stencil reads it; the interior loops then have no
clamps and LLVM vectorises them along x.
"""
from __future__ import annotations

import numpy as np
from numba import njit, prange

_TINY = 1e-30  # same guard as the torch path: 0/0 on flat frames gives a zero step


@njit(cache=True, inline="always")
def _clampi(i, n):
    return 0 if i < 0 else (n - 1 if i > n - 1 else i)


@njit(cache=True)
def _refresh(a, h, w, pad):
    """Replicate the interior ``a[pad:pad+h, pad:pad+w]`` into a ``pad``-wide border."""
    for y in range(pad, pad + h):
        for k in range(pad):
            a[y, k] = a[y, pad]
            a[y, pad + w + k] = a[y, pad + w - 1]
    for k in range(pad):
        for x in range(w + 2 * pad):
            a[k, x] = a[pad, x]
            a[pad + h + k, x] = a[pad + h - 1, x]


@njit(cache=True)
def _down(src, dst):
    """4x4 binomial [1, 3, 3, 1]/8 ⊗ itself, stride 2, replicate pad 1: ``[H, W] -> [H//2, W//2]``."""
    hh, ww = src.shape
    h, w = dst.shape
    k = (0.125, 0.375, 0.375, 0.125)
    for y in range(h):
        for x in range(w):
            s = 0.0
            for a in range(4):
                yy = _clampi(2 * y + a - 1, hh)
                row = 0.0
                for b in range(4):
                    row += k[b] * src[yy, _clampi(2 * x + b - 1, ww)]
                s += k[a] * row
            dst[y, x] = s


@njit(cache=True, inline="always")
def _bilerp(a, y0, y1, x0, x1, ly, lx):
    """Bilinear blend of ``a`` at rows y0/y1, columns x0/x1 with weights ly, lx on the second of each."""
    return (1 - ly) * ((1 - lx) * a[y0, x0] + lx * a[y0, x1]) + ly * ((1 - lx) * a[y1, x0] + lx * a[y1, x1])


@njit(cache=True, inline="always")
def _source(i, scale, n):
    """Source taps of output index ``i`` for align_corners=False resizing of ``n`` samples: (i0, i1, weight of i1)."""
    r = (i + 0.5) * scale - 0.5
    if r < 0.0:
        r = 0.0
    i0 = int(r)
    return i0, (i0 + 1 if i0 < n - 1 else i0), r - i0


@njit(cache=True)
def _upsample(u, v, h, w, uo, vo, hh, ww):
    """Bilinear resize (align_corners=False, like F.interpolate) of the padded fields ``u, v`` ([h, w]
    interiors) into the interiors of ``uo, vo`` ([hh, ww]), rescaled to the new pixel units."""
    fu, fv = ww / w, hh / h
    for y in range(hh):
        y0, y1, ly = _source(y, h / hh, h)
        for x in range(ww):
            x0, x1, lx = _source(x, w / ww, w)
            uo[y + 1, x + 1] = _bilerp(u, y0 + 1, y1 + 1, x0 + 1, x1 + 1, ly, lx) * fu
            vo[y + 1, x + 1] = _bilerp(v, y0 + 1, y1 + 1, x0 + 1, x1 + 1, ly, lx) * fv


@njit(cache=True)
def _warp(img, u, v, h, w, out):
    """``img [h, w]`` sampled at p + (u, v)(p), bilinear with coordinates clamped to the frame
    (grid_sample, padding_mode="border", align_corners=True) -> ``out [h, w]``."""
    for y in range(h):
        for x in range(w):
            sx = x + u[y + 1, x + 1]
            sy = y + v[y + 1, x + 1]
            # written so a NaN coordinate (a diverged flow) clamps to 0: never an index outside the frame
            sx = sx if sx >= 0.0 else 0.0
            sy = sy if sy >= 0.0 else 0.0
            sx = sx if sx <= w - 1.0 else w - 1.0
            sy = sy if sy <= h - 1.0 else h - 1.0
            x0 = int(sx)
            y0 = int(sy)
            x1 = x0 + 1 if x0 < w - 1 else x0
            y1 = y0 + 1 if y0 < h - 1 else y0
            lx = sx - x0
            ly = sy - y0
            out[y, x] = _bilerp(img, y0, y1, x0, x1, ly, lx)


@njit(cache=True, fastmath=True)
def _derivatives(i1, i2w, h, w, scale, both, diff, rowd, cold, gu, gv, c):
    """(Ix, Iy, It) * ``scale`` of the pair into ``gu, gv, c`` ([h, w]): the torch path's 5x5 kernel, applied
    separably (it is separable: [1, 2, 1]/4 along one axis, [1, -8, 0, 8, -1]/12 along the other; It the
    3x3 binomial of I2 - I1), on copies padded by 2 with replicated borders."""
    for y in range(h):
        for x in range(w):
            both[y + 2, x + 2] = i1[y, x] + i2w[y, x]
            diff[y + 2, x + 2] = i2w[y, x] - i1[y, x]
    _refresh(both, h, w, 2)
    _refresh(diff, h, w, 2)
    d1, d2 = 1.0 / 12.0, 8.0 / 12.0
    # rowd: x-difference of `both` on rows -1..h (padded rows 1..h+2); cold: y-difference on columns -1..w
    for y in range(1, h + 3):
        for x in range(w):
            rowd[y, x] = d1 * both[y, x] - d2 * both[y, x + 1] + d2 * both[y, x + 3] - d1 * both[y, x + 4]
    for y in range(h):
        for x in range(w + 2):
            cold[y, x + 1] = d1 * both[y, x + 1] - d2 * both[y + 1, x + 1] + d2 * both[y + 3, x + 1] \
                - d1 * both[y + 4, x + 1]
    sx = 0.5 * scale
    st = scale / 16.0
    for y in range(h):
        for x in range(w):
            gu[y, x] = sx * (0.25 * rowd[y + 1, x] + 0.5 * rowd[y + 2, x] + 0.25 * rowd[y + 3, x])
            gv[y, x] = sx * (0.25 * cold[y, x + 1] + 0.5 * cold[y, x + 2] + 0.25 * cold[y, x + 3])
            c[y, x] = st * (diff[y + 1, x + 1] + 2.0 * diff[y + 1, x + 2] + diff[y + 1, x + 3]
                            + 2.0 * (diff[y + 2, x + 1] + 2.0 * diff[y + 2, x + 2] + diff[y + 2, x + 3])
                            + diff[y + 3, x + 1] + 2.0 * diff[y + 3, x + 2] + diff[y + 3, x + 3])


@njit(cache=True, fastmath=True, inline="always")
def _avg(a, y, x):
    """Horn–Schunck average K * a at interior pixel (y, x) of a padded field (1/6 axis, 1/12 diagonal)."""
    return (2.0 * (a[y, x + 1] + a[y + 2, x + 1] + a[y + 1, x] + a[y + 1, x + 2])
            + (a[y, x] + a[y, x + 2] + a[y + 2, x] + a[y + 2, x + 2])) * (1.0 / 12.0)


@njit(cache=True, fastmath=True)
def _apply_a(pu, pv, gu, gv, h, w, qu, qv):
    """q = (I - K) p + g (g . p) on the interiors (p padded, border refreshed); returns p . q (float64)."""
    dot = 0.0
    for y in range(h):
        for x in range(w):
            a = pu[y + 1, x + 1]
            b = pv[y + 1, x + 1]
            s = gu[y, x] * a + gv[y, x] * b
            qa = a - _avg(pu, y, x) + gu[y, x] * s
            qb = b - _avg(pv, y, x) + gv[y, x] * s
            qu[y, x] = qa
            qv[y, x] = qb
            dot += a * qa + b * qb
    return dot


@njit(cache=True, fastmath=True)
def _pcg(gu, gv, c, h, w, iterations, xu, xv, has_flow, pu, pv, ru, rv, qu, qv, hu, hv):
    """``iterations`` PCG steps on (I - K + g gᵀ) x = -c g (the torch path's _pcg), x = (xu, xv) padded
    (the initial flow where ``has_flow``, else zero); preconditioner I - g hᵀ, h = g / (1 + |g|²)."""
    for y in range(h):
        for x in range(w):
            a, b = gu[y, x], gv[y, x]
            if has_flow:  # linearise around w0: c' = c - g . w0
                c[y, x] = c[y, x] - a * xu[y + 1, x + 1] - b * xv[y + 1, x + 1]
            inv = 1.0 / (a * a + b * b + 1.0)
            hu[y, x] = a * inv
            hv[y, x] = b * inv
            ru[y, x] = -c[y, x] * a
            rv[y, x] = -c[y, x] * b
    if has_flow:
        _refresh(xu, h, w, 1)
        _refresh(xv, h, w, 1)
        _apply_a(xu, xv, gu, gv, h, w, qu, qv)
        for y in range(h):
            for x in range(w):
                ru[y, x] -= qu[y, x]
                rv[y, x] -= qv[y, x]
    rz = 0.0
    for y in range(h):                                  # z = M⁻¹ r, p = z, rz = r . z
        for x in range(w):
            s = hu[y, x] * ru[y, x] + hv[y, x] * rv[y, x]
            za = ru[y, x] - gu[y, x] * s
            zb = rv[y, x] - gv[y, x] * s
            pu[y + 1, x + 1] = za
            pv[y + 1, x + 1] = zb
            rz += ru[y, x] * za + rv[y, x] * zb
    for k in range(iterations):
        _refresh(pu, h, w, 1)
        _refresh(pv, h, w, 1)
        pq = _apply_a(pu, pv, gu, gv, h, w, qu, qv)
        step = rz / (pq if pq > _TINY else _TINY)
        last = k == iterations - 1
        rz_next = 0.0
        for y in range(h):
            for x in range(w):
                xu[y + 1, x + 1] += step * pu[y + 1, x + 1]
                xv[y + 1, x + 1] += step * pv[y + 1, x + 1]
                if not last:
                    ra = ru[y, x] - step * qu[y, x]
                    rb = rv[y, x] - step * qv[y, x]
                    ru[y, x] = ra
                    rv[y, x] = rb
                    s = hu[y, x] * ra + hv[y, x] * rb
                    # z = M⁻¹ r is kept in q (q is not needed again this step)
                    qu[y, x] = ra - gu[y, x] * s
                    qv[y, x] = rb - gv[y, x] * s
                    rz_next += ra * qu[y, x] + rb * qv[y, x]
        if last:
            break
        beta = rz_next / (rz if rz > _TINY else _TINY)
        for y in range(h):
            for x in range(w):
                pu[y + 1, x + 1] = qu[y, x] + beta * pu[y + 1, x + 1]
                pv[y + 1, x + 1] = qv[y, x] + beta * pv[y + 1, x + 1]
        rz = rz_next


@njit(cache=True, fastmath=True)
def _jacobi(gu, gv, c, h, w, iterations, xu, xv, has_flow, bu, bv, hu, hv):
    """``iterations`` classic Horn–Schunck updates (notes §5) with g = ∇I/α, c = It/α:
    u <- ū - g_u (g . w̄ + c') / (1 + |g|²) (the torch path's _jacobi divided through by α²)."""
    for y in range(h):
        for x in range(w):
            a, b = gu[y, x], gv[y, x]
            if has_flow:
                c[y, x] = c[y, x] - a * xu[y + 1, x + 1] - b * xv[y + 1, x + 1]
            inv = 1.0 / (a * a + b * b + 1.0)
            hu[y, x] = a * inv
            hv[y, x] = b * inv
    for _ in range(iterations):
        _refresh(xu, h, w, 1)
        _refresh(xv, h, w, 1)
        for y in range(h):
            for x in range(w):
                bu[y, x] = _avg(xu, y, x)
                bv[y, x] = _avg(xv, y, x)
        for y in range(h):
            for x in range(w):
                s = gu[y, x] * bu[y, x] + gv[y, x] * bv[y, x] + c[y, x]
                xu[y + 1, x + 1] = bu[y, x] - hu[y, x] * s
                xv[y + 1, x + 1] = bv[y, x] - hv[y, x] * s


def scratch_floats(height: int, width: int) -> int:
    """float32 elements of one worker's scratch for frames of ``height x width`` (laid out by ``_pair``)."""
    h, w = height, width
    return 6 * (h + 2) * (w + 2) + 2 * (h + 4) * (w + 4) + (h + 4) * w + h * (w + 4) + 10 * h * w


def pyramid_floats(frames: int, sizes) -> int:
    """float32 elements of the pyramid of ``frames`` frames with level ``sizes`` [(h, w), ...]."""
    return frames * sum(h * w for h, w in sizes)


@njit(cache=True, inline="always")
def _take(buf, at, h, w):
    return buf[at:at + h * w].reshape((h, w)), at + h * w


@njit(cache=True)
def _pair(pyr, offsets, hs, ws, f1, f2, warps, iterations, alpha2, pcg, buf, out_u, out_v):
    """Flow of one frame pair (frames ``f1``, ``f2`` of the flat pyramid) into ``out_u, out_v`` [H, W];
    ``buf`` is this worker's scratch (``scratch_floats``), fully overwritten before it is read."""
    levels = hs.shape[0]
    hm, wm = hs[0], ws[0]
    xu, at = _take(buf, 0, hm + 2, wm + 2)
    xv, at = _take(buf, at, hm + 2, wm + 2)
    yu, at = _take(buf, at, hm + 2, wm + 2)
    yv, at = _take(buf, at, hm + 2, wm + 2)
    pu, at = _take(buf, at, hm + 2, wm + 2)
    pv, at = _take(buf, at, hm + 2, wm + 2)
    both, at = _take(buf, at, hm + 4, wm + 4)
    diff, at = _take(buf, at, hm + 4, wm + 4)
    rowd, at = _take(buf, at, hm + 4, wm)
    cold, at = _take(buf, at, hm, wm + 4)
    i2w, at = _take(buf, at, hm, wm)
    gu, at = _take(buf, at, hm, wm)
    gv, at = _take(buf, at, hm, wm)
    c, at = _take(buf, at, hm, wm)
    ru, at = _take(buf, at, hm, wm)
    rv, at = _take(buf, at, hm, wm)
    qu, at = _take(buf, at, hm, wm)
    qv, at = _take(buf, at, hm, wm)
    hu, at = _take(buf, at, hm, wm)
    hv, at = _take(buf, at, hm, wm)
    scale = 1.0 / np.sqrt(alpha2)
    has_flow = False
    ph, pw = 0, 0
    for lev in range(levels - 1, -1, -1):
        h, w = hs[lev], ws[lev]
        # every level's fields use the top-left [h(+pad), w(+pad)] corner of the full-size buffers
        i1 = pyr[offsets[lev] + f1 * h * w: offsets[lev] + (f1 + 1) * h * w].reshape((h, w))
        i2 = pyr[offsets[lev] + f2 * h * w: offsets[lev] + (f2 + 1) * h * w].reshape((h, w))
        if has_flow:  # upsample the coarser level's flow (in y) into x
            _upsample(yu, yv, ph, pw, xu, xv, h, w)
        else:         # the coarsest level starts from zero flow
            for y in range(h + 2):
                for x in range(w + 2):
                    xu[y, x] = 0.0
                    xv[y, x] = 0.0
        for _ in range(warps):
            if has_flow:
                _warp(i2, xu, xv, h, w, i2w)
                _derivatives(i1, i2w, h, w, scale, both, diff, rowd, cold, gu, gv, c)
            else:
                _derivatives(i1, i2, h, w, scale, both, diff, rowd, cold, gu, gv, c)
            if pcg:
                _pcg(gu, gv, c, h, w, iterations, xu, xv, has_flow, pu, pv, ru, rv, qu, qv, hu, hv)
            else:
                _jacobi(gu, gv, c, h, w, iterations, xu, xv, has_flow, ru, rv, hu, hv)
            has_flow = True
        ph, pw = h, w
        if lev > 0:   # keep this level's flow in y for the next (finer) level's upsampling
            for y in range(h + 2):
                for x in range(w + 2):
                    yu[y, x] = xu[y, x]
                    yv[y, x] = xv[y, x]
    for y in range(hs[0]):
        for x in range(ws[0]):
            out_u[y, x] = xu[y + 1, x + 1]
            out_v[y, x] = xv[y + 1, x + 1]


@njit(cache=True, parallel=True)
def horn_schunck_flow(frames, clips, length, hs, ws, warps, iterations, alpha2, pcg, pyr, scratch, out):
    """Flow of every consecutive pair of ``clips`` clips of ``length`` frames.

    ``frames [clips*length, H, W]`` float32 luma; ``hs``/``ws`` the pyramid sizes fine to coarse; ``pyr``
    a float32 buffer of ``pyramid_floats``; ``scratch [workers, scratch_floats]``; ``out [clips*(length-1),
    2, H, W]``. Worker k solves pairs k, k + workers, ...: which worker solves a pair never changes a bit.
    """
    nf = frames.shape[0]
    levels = hs.shape[0]
    offsets = np.zeros(levels + 1, np.int64)
    for lev in range(levels):
        offsets[lev + 1] = offsets[lev] + nf * hs[lev] * ws[lev]
    h0, w0 = hs[0], ws[0]
    for f in prange(nf):
        pyr[f * h0 * w0:(f + 1) * h0 * w0] = frames[f].ravel()
        for lev in range(1, levels):
            h, w = hs[lev], ws[lev]
            ph, pw = hs[lev - 1], ws[lev - 1]
            src = pyr[offsets[lev - 1] + f * ph * pw: offsets[lev - 1] + (f + 1) * ph * pw].reshape((ph, pw))
            dst = pyr[offsets[lev] + f * h * w: offsets[lev] + (f + 1) * h * w].reshape((h, w))
            _down(src, dst)
    pairs = clips * (length - 1)
    workers = scratch.shape[0]
    for k in prange(workers):
        for n in range(k, pairs, workers):
            b = n // (length - 1)
            f1 = b * length + n % (length - 1)
            _pair(pyr, offsets, hs, ws, f1, f1 + 1, warps, iterations, alpha2, pcg, scratch[k], out[n, 0], out[n, 1])
