"""How much of a picture is the grid a strided decoder prints: power at its stride periods against the neighbours.

A 4x4 stride-2 transposed convolution computes each of the four output phases (even/odd row x even/odd column)
with its own kernel taps; unless training equalises them, a flat input comes out as a pattern repeating every
2 px, and each coarser stage of the decoder adds one of period 4, 8, ... (Odena, Dumoulin and Olah,
"Deconvolution and Checkerboard Artifacts", Distill 2016, doi:10.23915/distill.00003). A pattern of period p
puts all its power on the frequencies (i/p, j/p) cycles per pixel; a picture without one has there about the
power of the frequencies around them. The measure is that ratio, in decibels.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = ["DECODER_PERIODS", "checkerboard_energy"]

#: The stride periods of DeepFlashNet's decoder in output pixels: one per x2 stage (finest first).
DECODER_PERIODS = (2, 4, 8, 16, 32)


def _power_spectrum(image: np.ndarray) -> np.ndarray:
    """|FFT|^2 summed over channels, of the mean-free image under a periodic Hann window.

    The periodic Hann window hides the jump between opposite edges (which would otherwise smear power along the
    axes) and spreads a tone that sits exactly on a frequency bin over that bin and its 8 neighbours only.
    """
    h, w = image.shape[:2]
    window = np.outer(0.5 - 0.5 * np.cos(2 * np.pi * np.arange(h) / h),
                      0.5 - 0.5 * np.cos(2 * np.pi * np.arange(w) / w))[..., None]
    centred = (image - image.mean(axis=(0, 1))) * window
    return (np.abs(np.fft.fft2(centred, axes=(0, 1))) ** 2).sum(axis=2)


def checkerboard_energy(image: np.ndarray, *, periods: Sequence[int] = DECODER_PERIODS) -> float:
    """The strongest stride-period grid in ``image``: its power against the neighbouring frequencies, in dB.

    For each period p, each frequency (i/p, j/p) cycles/px that a pattern of period p adds and one of period p/2
    does not (i or j odd) has its power (summed over the 3x3 bins the window spreads it on) divided by the mean
    power of 3x3 bins at its 8 neighbouring frequencies, 1/64 cycles/px away (at least 3 bins, so no lattice tone
    leaks in; halfway between lattice points of period 32); these ratios are averaged, so every frequency counts
    alike (a photo's power falls a hundredfold from low to high frequencies: a plain sum would see only the
    lowest). About 0 dB (within ~+-3 dB on photos) means no grid; a visible grid is 10 dB and more. Photos may
    hold a little of their own at period 2 (a Bayer sensor's demosaicing) or 8 (JPEG blocks).

    Parameters
    ----------
    image : ndarray, shape (H, W) or (H, W, C)
        Any real dtype; e.g. a network's output ``y`` or the predicted change ``2y - 1``.
    periods : sequence of int
        Periods in pixels to look at; each must divide both sides. Periods whose lattice is too dense for clean
        neighbours (side / p under 3 + the neighbours' offset in bins, i.e. a side under 6 p on small images)
        are skipped. The default: DeepFlashNet's decoder, 2 to 32 px.

    Returns
    -------
    float
        The largest of the per-period ratios, in dB (10 log10).

    Raises
    ------
    ValueError
        When a period does not divide a side, or the image is too small for every period (a side under 12 px).

    References
    ----------
    A. Odena, V. Dumoulin, C. Olah, "Deconvolution and Checkerboard Artifacts", Distill, 2016.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> noise = rng.random((128, 128))
    >>> round(checkerboard_energy(noise)) <= 3
    True
    >>> grid = noise + 0.1 * (np.indices((128, 128)).sum(axis=0) % 2)
    >>> checkerboard_energy(grid) > 10
    True
    """
    image = np.asarray(image, dtype=np.float64)
    if image.ndim == 2:
        image = image[..., None]
    if image.ndim != 3:
        raise ValueError(f"expected an (H, W) or (H, W, C) image, got shape {image.shape}")
    h, w = image.shape[:2]
    dy, dx = max(3, h // 64), max(3, w // 64)  # the neighbours' offset in bins
    usable = [int(p) for p in periods if h // int(p) >= dy + 3 and w // int(p) >= dx + 3]
    for p in usable:
        if p < 2 or h % p or w % p:
            raise ValueError(f"period {p} must be >= 2 and divide both sides of the {h}x{w} image")
    if not usable:
        raise ValueError(f"a {h}x{w} image is too small to measure periods {tuple(periods)} (side >= 6 x period)")
    power = _power_spectrum(image)
    block = sum(np.roll(power, (i, j), axis=(0, 1)) for i in (-1, 0, 1) for j in (-1, 0, 1))
    offsets = [(oy, ox) for oy in (-dy, 0, dy) for ox in (-dx, 0, dx) if (oy, ox) != (0, 0)]
    ratios = []
    for p in usable:
        ii, jj = np.meshgrid(np.arange(p), np.arange(p), indexing="ij")
        new = (ii % 2 == 1) | (jj % 2 == 1)  # what period p adds to period p / 2
        fy, fx = ii[new] * (h // p), jj[new] * (w // p)
        on = block[fy, fx]
        around = np.mean([block[(fy + oy) % h, (fx + ox) % w] for oy, ox in offsets], axis=0)
        flat = around <= 0  # a constant image: no power anywhere, no grid
        ratio = np.where(flat, 1.0, on / np.where(flat, 1.0, around))
        ratios.append(10.0 * np.log10(float(ratio.mean())))
    return float(max(ratios))
