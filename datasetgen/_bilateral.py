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
simplex is named by its remainder-0 vertex (a "base"; a 512x512 portrait has only ~6,500 distinct ones,
numbered through a dense index over the small box of their coordinates, or a hash table when that box is large)
and each of its vertices by (base, bitmask of the coordinates that moved), a small dense index; only the
(base, mask) pairs in use (~110,000) are then hashed to canonical lattice points, whose neighbours along the 6
lattice directions are looked up in the same table (one batched, vectorised open-addressing probe). The
lattice is blurred with the [1 2 1] kernel along those directions and read back with the pixels' barycentric
weights; splatting and slicing carry the three colours and the weight together as 4-vectors. Everything is
whole-array torch code on the CPU, with few, large operations (so that torch's intra-op threads help). OpenCV's
``bilateralFilter`` uses an L1 colour distance through a lookup table (about 40 dB against the exact filter);
this one keeps the Euclidean distance.

Error against :func:`bilateral_reference` (astronaut, 512 px, sigma_s 16, sigma_r 0.1): PSNR 49.1 dB; 99.9 % of
the values within 0.03, the largest error 0.1 at a few pixels of the strongest edges (the lattice's kernel is a
slightly anisotropic, piecewise-linear stand-in for the Gaussian). The error grows with sigma_r (47 dB at 0.1,
51 dB at 0.05, 43 dB at 0.2 on a 96 px portrait) and hardly depends on sigma_s. Speed, 512x512 (2-core AMD EPYC
VM): about 53 ms on one thread against 485 ms for ``cv2.bilateralFilter(d=-1)`` (9x), about 33 ms on two
threads against 245 ms (7x); ``bench/build.py`` re-measures both figures.

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


def _lookup(table: torch.Tensor, bits: int, codes: torch.Tensor, numbers: torch.Tensor, absent: int) -> torch.Tensor:
    """``numbers`` of the slot of each code in ``table`` (linear probing until an empty slot), ``absent`` if none."""
    mask = (1 << bits) - 1
    slot = _hash(codes, bits)
    cur = table[slot]
    hit = cur == codes
    result = torch.where(hit, numbers[slot], absent)
    go = (~hit & (cur != -1)).nonzero().squeeze(1)
    pslot = slot[go]
    pcodes = codes[go]
    while go.numel():
        pslot = (pslot + 1) & mask
        cur = table[pslot]
        hit = cur == pcodes
        result[go[hit]] = numbers[pslot[hit]]
        more = ~hit & (cur != -1)
        go, pslot, pcodes = go[more], pslot[more], pcodes[more]
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
    # rank[i] = how many coordinates have a larger remainder (ties: the later one ranks higher)
    rank = torch.arange(d1, dtype=torch.int8)[:, None].repeat(1, n)
    for i in range(d):
        lt = diff[i] < diff[i + 1:]
        rank[i] += lt.sum(0, dtype=torch.int8)
        rank[i + 1:] -= lt.to(torch.int8)
    c1 = (s > 0) & (rank >= d1 - s)
    c2 = (s < 0) & (rank < -s)
    adj = c2.to(torch.int8) - c1.to(torch.int8)
    q += adj
    rank += s + d1 * adj
    ridx = d - rank.long()  # the vertex each coordinate's rank points at
    # zr[k] = the (d-k)-th largest of the remainders: barycentric weights are its successive differences
    zr = torch.empty(d1, n)
    zr.scatter_(0, ridx, (el - q * d1) * (1.0 / d1))
    bary = torch.empty(d1, n)
    bary[0] = 1.0 + zr[0] - zr[d]
    torch.sub(zr[1:], zr[:d], out=bary[1:])
    # the remainder-0 vertex ("base") of each pixel's simplex: q (its coordinates / (d+1), summing to 0), coded
    # by d of its d+1 coordinates (the one with the widest span is left out); the distinct ones are numbered
    qlo = q.amin(1).long()
    qhi = q.amax(1).long()
    drop = int(torch.argmax(qhi - qlo))
    keep = [i for i in range(d1) if i != drop]
    lo = qlo[keep] - 2  # vertex quotients reach lo - 1, their neighbours lo - 2
    span = (qhi[keep] - lo + 2).tolist()  # ... and hi + 1
    mult = [1] * d
    for i in range(1, d):
        mult[i] = mult[i - 1] * span[i - 1]
    size = mult[-1] * span[-1]
    if size < 1 << 24:  # float32 holds these integer sums exactly
        base_code = (torch.tensor([mult], dtype=torch.float32) @ (q[keep] - lo[:, None].float()))[0].long()
    else:
        base_code = ((q[keep].long() - lo[:, None]) * torch.tensor(mult)[:, None]).sum(0)
    if size <= 8 * n + (1 << 16):  # a dense index
        flag = torch.zeros(size, dtype=torch.int64)
        flag.index_fill_(0, base_code, 1)
        number = torch.cumsum(flag, 0) - 1
        nbase = int(number[-1]) + 1
        base_idx = number.index_select(0, base_code)
    else:
        _, _, base_idx, _ = _compact(base_code, max(10, math.ceil(math.log2(n)) - 3))
        nbase = int(base_idx.max()) + 1
    bcodes = torch.empty(nbase, dtype=torch.int64)
    bcodes.index_copy_(0, base_idx, base_code)  # duplicates carry equal values
    # vertex r of a pixel's simplex = base + r - (d+1) * [coordinates ranked in the top r]: named by
    # (base, bitmask of those coordinates)
    bit_by_rank = torch.empty(d1, n, dtype=torch.int32)  # [k]: the bit of the coordinate ranked d - k
    bit_by_rank.scatter_(0, ridx, torch.tensor([1 << i for i in range(d1)], dtype=torch.int32)[:, None].expand(d1, n))
    masks = torch.zeros(d1, n, dtype=torch.int64)  # running sums of bit_by_rank
    masks[1] = bit_by_rank[0]
    for k in range(1, d):
        torch.add(masks[k], bit_by_rank[k], out=masks[k + 1])
    vid = (base_idx * 64)[None, :] + masks  # (d1, n)
    used = torch.zeros(nbase * 64, dtype=torch.int64)
    vid = vid.view(-1)
    used.index_fill_(0, vid, 1)
    dense = torch.nonzero(used).squeeze(1)  # the (base, mask) pairs in use
    # canonical code of each (base, mask): vertex r + (d+1) * the code of its quotient a (the base minus the
    # mask's bits), so that the same lattice point reached from several bases gets one code
    b = dense // 64
    mk = dense % 64
    r = torch.zeros_like(mk)
    for i in range(d1):
        r += (mk >> i) & 1
    kbits = torch.tensor([1 << i for i in keep])
    codes = bcodes[b] - ((mk[None, :] & kbits[:, None]) != 0).long().mul_(torch.tensor(mult)[:, None]).sum(0)
    codes = codes * d1 + r
    table, index_of_slot, u2m, bits = _compact(codes, max(10, math.ceil(math.log2(codes.numel())) + 2))
    m = int(index_of_slot[-1]) + 1
    mcodes = torch.empty(m, dtype=torch.int64)
    mcodes[u2m] = codes
    used[dense] = u2m
    pix = used.index_select(0, vid)  # (d1 * n,) lattice point of each vertex
    gridt = torch.zeros(4, m + 1)
    vals = torch.cat([chans, torch.ones(1, n)], 0)  # (4, n)
    pix = pix.view(d1, n)
    for k in range(d1):
        gridt.index_add_(1, pix[k], vals * bary[k])
    grid = gridt.T.contiguous()  # (m + 1, 4); row m: "no neighbour", stays zero
    # neighbours along each lattice direction (1, .., 1, -d, 1, .., 1): +delta looked up, -delta its inverse
    rm = mcodes % d1
    qstep = [0] * d1
    for i, k in enumerate(keep):
        qstep[k] = mult[i]
    total = sum(mult)
    deltas = torch.tensor([[1 - d1 * qstep[j], d1 * (total - qstep[j]) - d] for j in range(d1)])  # (d1, 2)
    query = mcodes[None, :] + deltas[:, (rm == d).long()]  # (d1, m)
    plus = _lookup(table, bits, query.reshape(-1), index_of_slot, m).view(d1, m)
    minus = torch.full((d1, m + 1), m, dtype=torch.int64)
    minus.scatter_(1, plus, torch.arange(m).expand(d1, m))
    minus = minus[:, :m]
    for j in range(d1):
        blurred = grid.index_select(0, plus[j]).add_(grid.index_select(0, minus[j])).mul_(0.25)
        grid[:m].mul_(0.5).add_(blurred)
    out = grid.index_select(0, pix[0]).mul_(bary[0, :, None])
    for k in range(1, d1):
        out.addcmul_(grid.index_select(0, pix[k]), bary[k, :, None])
    res = (out[:, :3] / out[:, 3:]).view(h, w, 3)
    return res


def bilateral_filter(image: np.ndarray, sigma_s: float = 16.0, sigma_r: float = 0.1) -> np.ndarray:
    """Bilateral filter of a float32 HxWx3 RGB image in [0, 1] (Euclidean colour distance).

    ``out(p) = sum_q w(p, q) I(q) / sum_q w(p, q)``,
    ``w = exp(-|p - q|^2 / (2 sigma_s^2) - |I(p) - I(q)|^2 / (2 sigma_r^2))``, computed on a permutohedral
    lattice (see the module docstring): about 49 dB PSNR against the exact sum, ~9x faster than OpenCV's
    (approximate, L1) ``cv2.bilateralFilter`` on one core (~7x on two). The result depends only on the input (no
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
