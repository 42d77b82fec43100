"""The bilateral filter of the paper: sigma_s = 16 px, sigma_r = 0.1, Euclidean distance in RGB.

Two implementations live here:

* :func:`bilateral_reference` -- the exact definition, summed over a (6 sigma_s + 1)^2 window. Slow (about a
  minute at 512 px); it is the yardstick of the tests and of ``bench/build.py``.
* :func:`bilateral_filter` -- a permutohedral lattice (Adams, Baek and Davis, "Fast High-Dimensional Filtering
  Using the Permutohedral Lattice", Eurographics 2010) in vectorised torch CPU code, used everywhere else.

Why the lattice: the filter is a Gaussian blur in the 5-D space (x/sigma_s, y/sigma_s, r/sigma_r, g/sigma_r,
b/sigma_r). A dense 5-D bilateral grid needs 2^5 = 32 corners per pixel to splat and to slice; the
permutohedral lattice tessellates the same space with simplices, so each pixel touches only d + 1 = 6 lattice
points, and only the lattice points near some pixel exist (about 40,000 for a 512x512 portrait). Each pixel's
simplex is named by its remainder-0 vertex (a "base"; a 512x512 portrait has only ~6,500 distinct ones, found
with a vectorised open-addressing hash table, no sort) and each of its vertices by (base, bitmask of the
coordinates that moved), a small dense index; only the few (base, mask) pairs in use are then hashed to
canonical lattice points, which are blurred with the [1 2 1] kernel along the 6 lattice directions and read
back with the pixels' barycentric weights. Everything is whole-array torch code on the CPU. OpenCV's
``bilateralFilter`` uses an L1 colour distance through a lookup table (about 40 dB against the exact filter);
this one keeps the Euclidean distance.

Error against :func:`bilateral_reference` (astronaut, 512 px, sigma_s 16, sigma_r 0.1): PSNR 49 dB; 99.9 % of
the values within 0.03, the largest error 0.1 at a few pixels of the strongest edges (the lattice's kernel is a
slightly anisotropic, piecewise-linear stand-in for the Gaussian). The error grows with sigma_r (47 dB at 0.1,
51 dB at 0.05, 43 dB at 0.2 on a 96 px portrait) and hardly depends on sigma_s. Speed, 512x512 on one core:
about 85 ms, 6x faster than ``cv2.bilateralFilter(d=-1)``; ``bench/build.py`` re-measures both figures.

The summation order of a few reductions depends on torch's thread count (differences of ~1e-7); with one
thread (as the dataset builder runs it) the result is bit-for-bit reproducible.
"""

from __future__ import annotations

import math

import numpy as np
import torch

__all__ = ["bilateral_filter", "bilateral_reference"]

def _check_image(image: np.ndarray) -> np.ndarray:
    array = np.asarray(image)
    if array.ndim != 3 or array.shape[2] != 3:
        raise ValueError(f"bilateral filter wants an HxWx3 RGB image, got shape {array.shape}")
    if not np.issubdtype(array.dtype, np.floating):
        raise ValueError(f"bilateral filter wants a float image in [0, 1], got dtype {array.dtype}")
    return np.ascontiguousarray(array, dtype=np.float32)


def _check_sigmas(sigma_s: float, sigma_r: float) -> None:
    if not (sigma_s > 0 and sigma_r > 0 and math.isfinite(sigma_s) and math.isfinite(sigma_r)):
        raise ValueError(f"sigma_s and sigma_r must be positive, got {sigma_s}, {sigma_r}")


def bilateral_reference(image: np.ndarray, sigma_s: float = 16.0, sigma_r: float = 0.1, *,
                        radius: int | None = None) -> np.ndarray:
    """Exact brute-force bilateral filter (the definition), for tests and benchmarks.

    ``out(p) = sum_q w(p, q) I(q) / sum_q w(p, q)`` with
    ``w = exp(-|p - q|^2 / (2 sigma_s^2) - |I(p) - I(q)|^2 / (2 sigma_r^2))`` over the square window of
    ``radius`` (default ``3 sigma_s``) clipped to the image (no padding: pixels outside do not exist).
    """
    img = _check_image(image)
    _check_sigmas(sigma_s, sigma_r)
    radius = math.ceil(3 * sigma_s) if radius is None else int(radius)
    h, w, _ = img.shape
    src = torch.from_numpy(img).double()
    num = torch.zeros_like(src)
    den = torch.zeros((h, w, 1), dtype=torch.float64)
    inv_s = -0.5 / sigma_s**2
    inv_r = -0.5 / sigma_r**2
    for dy in range(-radius, radius + 1):
        y0, y1 = max(0, -dy), min(h, h - dy)  # output rows whose neighbour row y+dy exists
        if y0 >= y1:
            continue
        for dx in range(-radius, radius + 1):
            x0, x1 = max(0, -dx), min(w, w - dx)
            if x0 >= x1:
                continue
            centre = src[y0:y1, x0:x1]
            other = src[y0 + dy:y1 + dy, x0 + dx:x1 + dx]
            dist2 = (centre - other).square_().sum(dim=2, keepdim=True)
            weight = torch.exp(dist2 * inv_r + (dx * dx + dy * dy) * inv_s)
            num[y0:y1, x0:x1] += weight * other
            den[y0:y1, x0:x1] += weight
    return (num / den).float().numpy()


_D = 5  # dimensions of the feature space: x, y, r, g, b
_FIB = -7046029254386353131  # 0x9E3779B97F4A7C15 as signed int64


def _hash(codes: torch.Tensor, bits: int) -> torch.Tensor:
    """Fibonacci hashing: the top ``bits`` bits of code * 2^64/phi (int64 multiply wraps)."""
    return ((codes * _FIB) >> (64 - bits)) & ((1 << bits) - 1)


def _insert(codes: torch.Tensor, bits: int) -> tuple[torch.Tensor, torch.Tensor] | None:
    """Open addressing: put each distinct code in one slot; return (table, slot of each code), None if too full."""
    size = 1 << bits
    table = torch.full((size,), -1, dtype=torch.int64)
    slot = _hash(codes, bits)
    table[slot] = codes
    bad = (table[slot] != codes).nonzero().squeeze(1)
    pslot = slot[bad]
    pcodes = codes[bad]
    rounds = 0
    while bad.numel():
        pslot = (pslot + 1) & (size - 1)
        cur = table[pslot]
        empty = cur == -1
        table[pslot[empty]] = pcodes[empty]
        ok = table[pslot] == pcodes
        slot[bad[ok]] = pslot[ok]
        miss = ~ok
        bad, pslot, pcodes = bad[miss], pslot[miss], pcodes[miss]
        rounds += 1
        if rounds > 64:
            return None
    return table, slot


def _lookup(table: torch.Tensor, bits: int, codes: torch.Tensor) -> torch.Tensor:
    """Slot of each code in ``table``, or -1 where the code is absent (linear probing until an empty slot)."""
    size = 1 << bits
    slot = _hash(codes, bits)
    result = torch.full_like(codes, -1)
    pending = torch.arange(codes.numel())
    pslot = slot
    pcodes = codes
    while pending.numel():
        cur = table[pslot]
        hit = cur == pcodes
        result[pending[hit]] = pslot[hit]
        go = ~hit & (cur != -1)
        pending = pending[go]
        pslot = (pslot[go] + 1) & (size - 1)
        pcodes = pcodes[go]
    return result


def _compact(codes: torch.Tensor, bits: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, int]:
    """Number the distinct codes 0..m-1: (hash table, slot -> number, number of each code, bits of the table).

    The table grows (``bits``) until open addressing settles in a few probes."""
    while True:
        res = _insert(codes, bits)
        if res is not None:
            break
        bits += 2
    table, slot = res
    occupied = table != -1
    index_of_slot = torch.cumsum(occupied, 0) - 1
    return table, index_of_slot, index_of_slot[slot], bits


def _permutohedral(img: torch.Tensor, sigma_s: float, sigma_r: float) -> torch.Tensor:
    """Splat the pixels onto the lattice, blur it, slice it back (Adams et al. 2010, vectorised)."""
    h, w, _ = img.shape
    d = _D
    d1 = d + 1
    n = h * w
    inv_std = math.sqrt(2.0 / 3.0) * d1
    sf = [inv_std / math.sqrt((i + 1) * (i + 2)) for i in range(d)]
    M = torch.zeros(d1, d, dtype=torch.float32)  # el (d1, n) = M @ f (d, n)
    for i in range(1, d1):
        M[i, i - 1] = -i * sf[i - 1]
        for k in range(i, d):
            M[i, k] += sf[k]
    M[0, :] = torch.tensor(sf)
    xs = torch.arange(w, dtype=torch.float32) / sigma_s
    ys = torch.arange(h, dtype=torch.float32) / sigma_s
    chans = img.reshape(n, 3).T.contiguous()  # (3, n)
    el = (M[:, 2:] * (1.0 / sigma_r)) @ chans  # (6, n)
    el = el.view(d1, h, w)
    el += M[:, 0, None, None] * xs[None, None, :]
    el += M[:, 1, None, None] * ys[None, :, None]
    el = el.view(d1, n)
    q = torch.round(el * (1.0 / d1))  # greedy / (d+1)
    s = q.sum(0).round().to(torch.int8)
    diff = el - q * d1
    rank = torch.zeros(d1, n, dtype=torch.int8)
    for i in range(d1):
        for j in range(i + 1, d1):
            lt = diff[i] < diff[j]
            rank[i] += lt
            rank[j] += ~lt
    c1 = (s > 0) & (rank >= d1 - s)
    c2 = (s < 0) & (rank < -s)
    adj = c2.to(torch.int8) - c1.to(torch.int8)
    q += adj
    rank += s + d1 * adj
    rank = rank.long()
    # zr[k] = the (d-k)-th largest of the remainders: barycentric weights are its successive differences
    zr = torch.empty(d1, n)
    zr.scatter_(0, d - rank, (el - q * d1) * (1.0 / d1))
    bary = torch.empty(d1, n)
    bary[0] = 1.0 + zr[0] - zr[d]
    torch.sub(zr[1:], zr[:d], out=bary[1:])
    # the remainder-0 vertex ("base") of each pixel's simplex: q (its coordinates / (d+1)); distinct ones hashed
    qi = q[:d].to(torch.int64)
    lo = qi.amin(1) - 1
    span = qi.amax(1) - lo + 2
    mult = [1] * d
    for i in range(1, d):
        mult[i] = mult[i - 1] * int(span[i - 1])
    base_code = ((qi - lo[:, None]) * torch.tensor(mult)[:, None]).sum(0)
    btable, _, base_idx, _ = _compact(base_code, max(10, math.ceil(math.log2(n)) - 3))
    bcodes = btable[btable != -1]  # in index order
    nbase = bcodes.numel()
    # vertex r of a pixel's simplex = base + r - (d+1) * [coordinates ranked in the top r]: named by
    # (base, bitmask of those coordinates)
    bit_by_rank = torch.empty(d1, n, dtype=torch.int64)  # [k]: the bit of the coordinate ranked d - k
    bit_by_rank.scatter_(0, d - rank, torch.tensor([1 << i for i in range(d1)])[:, None].expand(d1, n))
    masks = torch.zeros(d1, n, dtype=torch.int64)
    torch.cumsum(bit_by_rank[:d], 0, out=masks[1:])
    vid = (base_idx * 64)[None, :] + masks  # (d1, n)
    used = torch.zeros(nbase * 64, dtype=torch.int32)
    used[vid.reshape(-1)] = 1
    dense = torch.nonzero(used).squeeze(1)  # the (base, mask) pairs in use
    used = torch.cumsum(used, 0, dtype=torch.int64) - 1
    pix = used[vid.reshape(-1)]  # (d1 * n,) index into dense
    # canonical lattice code of each (base, mask): the same lattice point may be reached from several bases
    bq = torch.empty(d, nbase, dtype=torch.int64)  # base coordinates / (d+1), decoded from the codes
    rest = bcodes
    for i in range(d - 1, -1, -1):
        bq[i] = rest // mult[i] + lo[i]
        rest = rest % mult[i]
    b = dense // 64
    mk = dense % 64
    r = torch.zeros_like(mk)
    for i in range(d1):
        r += (mk >> i) & 1
    keys = bq[:, b] * d1 + r[None, :] - d1 * ((mk[None, :] >> torch.arange(d)[:, None]) & 1)  # (d, u)
    klo = lo * d1 - d1
    kmult = [1] * d
    kspan = (span + 2) * d1
    for i in range(1, d):
        kmult[i] = kmult[i - 1] * int(kspan[i - 1])
    codes = ((keys - klo[:, None]) * torch.tensor(kmult)[:, None]).sum(0)
    table, index_of_slot, u2m, bits = _compact(codes, max(10, math.ceil(math.log2(codes.numel())) + 1))
    m = int(u2m.max()) + 1
    mcodes = torch.empty(m, dtype=torch.int64)
    mcodes[u2m] = codes
    u = dense.numel()
    bflat = bary.reshape(-1)
    grid_u = torch.zeros(4, u)
    for c in range(3):
        grid_u[c].index_add_(0, pix, (chans[c][None, :] * bary).reshape(-1))
    grid_u[3].index_add_(0, pix, bflat)
    grid = torch.zeros(4, m)
    grid.index_add_(1, u2m, grid_u)
    # neighbours along each lattice direction: look up +delta; the -delta neighbour is its inverse
    arange_m = torch.arange(m)
    for j in range(d1):
        off = [1] * d
        if j < d:
            off[j] = -d
        delta = sum(o * mm for o, mm in zip(off, kmult, strict=True))
        slot = _lookup(table, bits, mcodes + delta)
        has = slot >= 0
        plus = torch.full((m,), m, dtype=torch.int64)  # m = "no neighbour" (a zero column)
        plus[has] = index_of_slot[slot[has]]
        minus = torch.full((m + 1,), m, dtype=torch.int64)
        minus[plus] = arange_m
        padded = torch.cat([grid, torch.zeros(4, 1)], 1)
        grid = 0.5 * grid + 0.25 * (padded[:, plus] + padded[:, minus[:m]])
    grid_u = grid[:, u2m].contiguous()
    out = torch.empty(4, n)
    for c in range(4):
        out[c] = (torch.take(grid_u[c], pix).view(d1, n) * bary).sum(0)
    res = (out[:3] / out[3]).T.reshape(h, w, 3)
    return res


def bilateral_filter(image: np.ndarray, sigma_s: float = 16.0, sigma_r: float = 0.1) -> np.ndarray:
    """Bilateral filter of a float32 HxWx3 RGB image in [0, 1] (Euclidean colour distance).

    ``out(p) = sum_q w(p, q) I(q) / sum_q w(p, q)``,
    ``w = exp(-|p - q|^2 / (2 sigma_s^2) - |I(p) - I(q)|^2 / (2 sigma_r^2))``, computed on a permutohedral
    lattice (see the module docstring): about 49 dB PSNR against the exact sum, ~6x faster than OpenCV's
    (approximate, L1) ``cv2.bilateralFilter`` on one core. The result depends only on the input (no
    randomness); with one torch thread it is bit-for-bit reproducible.

    Parameters
    ----------
    image : ndarray
        HxWx3 float image in [0, 1] (other float dtypes are converted to float32).
    sigma_s : float
        Spatial standard deviation in pixels (the paper: 16).
    sigma_r : float
        Range standard deviation in RGB units (the paper: 0.1).

    Returns
    -------
    ndarray
        float32 HxWx3, same shape.

    Examples
    --------
    >>> flat = np.full((32, 32, 3), 0.25, np.float32)
    >>> float(abs(bilateral_filter(flat) - 0.25).max()) < 1e-5
    True
    """
    img = _check_image(image)
    _check_sigmas(sigma_s, sigma_r)
    if img.shape[0] == 0 or img.shape[1] == 0:
        return img.copy()
    with torch.no_grad():
        out = _permutohedral(torch.from_numpy(img), float(sigma_s), float(sigma_r))
    return np.ascontiguousarray(out.numpy(), dtype=np.float32)
