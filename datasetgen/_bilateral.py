"""The bilateral filter of the paper: sigma_s = 16 px, sigma_r = 0.1, Euclidean distance in RGB.

Two implementations live here:

* :func:`bilateral_reference` -- the exact definition, summed over a (6 sigma_s + 1)^2 window. Slow (about a
  minute at 512 px); it is the yardstick of the tests and of ``bench/build.py``.
* :func:`bilateral_filter` -- a permutohedral lattice (Adams, Baek and Davis, "Fast High-Dimensional Filtering
  Using the Permutohedral Lattice", Eurographics 2010) in vectorised torch CPU code, used everywhere else.

Why the lattice: the filter is a Gaussian blur in the 5-D space (x/sigma_s, y/sigma_s, r/sigma_r, g/sigma_r,
b/sigma_r). A dense 5-D bilateral grid needs 2^5 = 32 corners per pixel to splat and to slice; the
permutohedral lattice tessellates the same space with simplices, so each pixel touches only d + 1 = 6 lattice
points, and only the lattice points near some pixel exist (about 40,000 for a 512x512 portrait). The lattice
points are found with a vectorised open-addressing hash table (no sort), blurred with the [1 2 1] kernel along
the 6 lattice directions, and read back with the pixels' barycentric weights. OpenCV's ``bilateralFilter``
uses an L1 colour distance through a lookup table (about 40 dB against the exact filter); this one keeps the
Euclidean distance.

Error against :func:`bilateral_reference` (astronaut, 512 px, sigma_s 16, sigma_r 0.1): PSNR 49 dB (max error
about 0.03 at the strongest edges, where the lattice's kernel is slightly anisotropic); ``bench/build.py``
re-measures it.
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


def _permutohedral(img: torch.Tensor, sigma_s: float, sigma_r: float) -> torch.Tensor:
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
    greedy = torch.round(el * (1.0 / d1)) * d1
    s = (greedy.sum(0) * (1.0 / d1)).round().to(torch.int8)
    diff = el - greedy
    rank = torch.zeros(d1, n, dtype=torch.int8)
    for i in range(d1):
        for j in range(i + 1, d1):
            lt = diff[i] < diff[j]
            rank[i] += lt
            rank[j] += ~lt
    c1 = (s > 0) & (rank >= d1 - s)
    c2 = (s < 0) & (rank < -s)
    adj = c2.to(torch.int8) - c1.to(torch.int8)
    greedy += d1 * adj
    rank += s + d1 * adj
    rank = rank.long()
    z = torch.empty(d1, n)
    z.scatter_(0, rank, (el - greedy) * (1.0 / d1))  # z[k] = k-th largest
    bary = torch.empty(d1, n)
    bary[0] = 1.0 + z[d] - z[0]
    bary[1:] = z[:d].flip(0) - z[1:].flip(0)  # b[j] = z[d-j] - z[d+1-j]
    gi = greedy[:d].to(torch.int64)
    lo = gi.amin(1) - d1
    span = gi.amax(1) - lo + 2 * d1
    mult = [1] * d
    for i in range(1, d):
        mult[i] = mult[i - 1] * int(span[i - 1])
    multt = torch.tensor(mult)
    base = ((gi - lo[:, None]) * multt[:, None]).sum(0)
    acc = torch.zeros(d + 2, n, dtype=torch.int64)
    acc.scatter_add_(0, d1 - rank[:d], multt[:, None].expand(d, n))
    acc = acc.cumsum(0)[:d1]
    codes = base[None, :] + (torch.arange(d1) * sum(mult))[:, None] - d1 * acc  # (d1, n)
    codes = codes.reshape(-1)
    bits = max(12, math.ceil(math.log2(n)) + 1)
    while True:
        res = _insert(codes, bits)
        if res is not None:
            break
        bits += 2
    table, slot = res
    occupied = table != -1
    keys = table[occupied]
    m = keys.numel()
    index_of_slot = torch.full((1 << bits,), -1, dtype=torch.int64)
    index_of_slot[occupied] = torch.arange(m)
    inv = index_of_slot[slot]
    grid = torch.zeros(4, m)
    bflat = bary.reshape(-1)
    for c in range(3):
        grid[c].index_add_(0, inv, (chans[c][None, :] * bary).reshape(-1))
    grid[3].index_add_(0, inv, bflat)
    for j in range(d1):
        off = [1] * d
        if j < d:
            off[j] = -d
        delta = sum(o * mm for o, mm in zip(off, mult, strict=True))
        new = grid * 0.5
        for dl in (delta, -delta):
            nb = _lookup(table, bits, keys + dl)
            ok = nb >= 0
            idx = index_of_slot[nb.clamp(min=0)]
            new += 0.25 * grid[:, idx] * ok
        grid = new
    out = torch.empty(4, n)
    for c in range(4):
        out[c] = (grid[c][inv].view(d1, n) * bary).sum(0)
    res = (out[:3] / out[3]).T.reshape(h, w, 3)
    return res


def bilateral_filter(image: np.ndarray, sigma_s: float = 16.0, sigma_r: float = 0.1) -> np.ndarray:
    """Bilateral filter of a float32 HxWx3 RGB image in [0, 1] (Euclidean colour distance).

    ``out(p) = sum_q w(p, q) I(q) / sum_q w(p, q)``,
    ``w = exp(-|p - q|^2 / (2 sigma_s^2) - |I(p) - I(q)|^2 / (2 sigma_r^2))``, computed on a permutohedral
    lattice (see the module docstring): about 49 dB PSNR against the exact sum, 4-5x faster than OpenCV's
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
