"""The paper's loss (eq. 5), accuracy (eq. 7), the three output encodings of its Figure 3, and SSIM / PSNR.

Notation (NOTES §1): ``x`` flash image, ``o`` studio image, ``BL`` the bilateral filter, ``t`` the target,
``y`` the network output; all N x 3 x H x W in [0, 1].

Encodings (``--encoding``; the paper's Figure 3 study):

* ``C`` (default, the paper's): input ``BL(x)``, target ``t = (BL(x) - BL(o) + 1) / 2``; the prediction
  ``pred = x - 2y + 1`` takes the low-frequency difference off the unfiltered flash image (eq. 2).
* ``B`` -- the unfiltered difference: input ``x``, target ``(x - o + 1) / 2``; ``pred = x - 2y + 1``. The
  network must reproduce the high frequencies of the difference itself.
* ``A`` -- the studio image directly: input ``x``, target ``o``; ``pred = y``.

All three train with eq. 5, as in the paper's study; with A the per-channel offset the centring ignores is
left to the network's bias (which is why A drifts in brightness, one of the figure's points).
"""

from __future__ import annotations

from typing import Final, Literal

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["ENCODINGS", "accuracy", "decode_prediction", "deepflash_loss", "encode_sample", "psnr", "ssim"]

Encoding = Literal["A", "B", "C"]
ENCODINGS: Final = ("A", "B", "C")


def _check_pair(y: Tensor, t: Tensor) -> None:
    if y.shape != t.shape or y.ndim != 4:
        raise ValueError(f"y and t must both be N x C x H x W of the same shape, got {tuple(y.shape)} and "
                         f"{tuple(t.shape)}")


def deepflash_loss(y: Tensor, t: Tensor, valid: Tensor | None = None, *,
                   reduction: Literal["mean", "none"] = "mean", offset_weight: float = 0.0) -> Tensor:
    """Eq. 5: ``4/(3N) sum((t - y) + E[y - t])^2`` with E the mean over one image and one channel.

    The centring makes the loss blind to a constant offset per image and channel: the network learns the
    shape of the lighting difference, not its absolute level, which the paper found steadier. The flip side:
    nothing pulls the per-channel mean of ``y`` anywhere, so it stays where initialisation put it (a colour
    cast of ``pred`` that training never removes). ``offset_weight`` w adds ``4 w E[y - t]^2`` per channel:
    w = 0 is eq. 5, w = 1 the plain (uncentred) ``4/(3N) sum (t - y)^2``, in between the scale-invariant
    error of Eigen et al. 2014 with lambda = 1 - w.

    Parameters
    ----------
    y, t : Tensor, shape (N, 3, H, W)
        Network output and target.
    valid : Tensor, shape (N, H, W) or (N, 1, H, W), optional
        1 where the target is real (rotation padding is 0); means and sums run over those pixels only.

    reduction : {"mean", "none"}
        The batch mean (a scalar), or one loss per image (shape (N,)).
    offset_weight : float
        Weight in [0, 1] of the per-channel mean error (0: the paper's eq. 5).

    Returns
    -------
    Tensor
        The mean over the batch of each image's loss (so data-parallel gradient averaging over equal
        per-process batches equals the single-process loss), or the per-image losses.
    """
    _check_pair(y, t)
    if reduction not in ("mean", "none"):
        raise ValueError(f"reduction must be 'mean' or 'none', not {reduction!r}")
    if not 0.0 <= offset_weight <= 1.0:
        raise ValueError(f"offset_weight must lie in [0, 1], got {offset_weight}")
    diff = (t - y).float()
    if valid is None:
        mean = diff.mean(dim=(2, 3), keepdim=True)
        centred = diff - mean
        per_image = centred.square().mean(dim=(1, 2, 3))
    else:
        mask = valid.float()
        if mask.ndim == 3:
            mask = mask.unsqueeze(1)
        if mask.shape[0] != y.shape[0] or mask.shape[-2:] != y.shape[-2:]:
            raise ValueError(f"valid mask of shape {tuple(valid.shape)} does not match y {tuple(y.shape)}")
        count = mask.sum(dim=(2, 3), keepdim=True).clamp_min(1.0)
        mean = (diff * mask).sum(dim=(2, 3), keepdim=True) / count
        centred = (diff - mean) * mask
        per_image = centred.square().sum(dim=(1, 2, 3)) / (y.shape[1] * count.view(-1))
    if offset_weight:
        per_image = per_image + offset_weight * mean.square().mean(dim=(1, 2, 3))
    per_image = 4.0 * per_image
    return per_image.mean() if reduction == "mean" else per_image


def accuracy(y: Tensor, t: Tensor, flash_bl: Tensor) -> Tensor:
    """Eq. 7: ``100 - 100/(3wh) sum|t_d - y_d|`` with ``t_d = BL(x) - 2t + 1`` and ``y_d = BL(x) - 2y + 1``.

    Returns
    -------
    Tensor, shape (N,)
        Per image, in percent (100 = the filtered studio image exactly).
    """
    _check_pair(y, t)
    _check_pair(flash_bl, t)
    t_d = flash_bl.float() - 2 * t.float() + 1
    y_d = flash_bl.float() - 2 * y.float() + 1
    return 100.0 - 100.0 * (t_d - y_d).abs().mean(dim=(1, 2, 3))


def encode_sample(encoding: Encoding, x: Tensor, o: Tensor, x_bl: Tensor, t: Tensor) -> tuple[Tensor, Tensor]:
    """The network input and target of an encoding (see the module docstring)."""
    if encoding == "C":
        return x_bl, t
    if encoding == "B":
        return x, (x - o + 1) / 2
    if encoding == "A":
        return x, o
    raise ValueError(f"encoding must be one of {ENCODINGS}, not {encoding!r}")


def decode_prediction(encoding: Encoding, y: Tensor, x: Tensor) -> Tensor:
    """The studio image the output ``y`` stands for: ``x - 2y + 1`` (B, C) or ``y`` (A); not clipped."""
    if encoding in ("B", "C"):
        return x - 2 * y + 1
    if encoding == "A":
        return y
    raise ValueError(f"encoding must be one of {ENCODINGS}, not {encoding!r}")


def _gaussian_window(size: int, sigma: float, channels: int, device: torch.device) -> Tensor:
    coords = torch.arange(size, dtype=torch.float32, device=device) - (size - 1) / 2
    g = torch.exp(-coords.square() / (2 * sigma * sigma))
    g = g / g.sum()
    return (g[:, None] * g[None, :]).expand(channels, 1, size, size).contiguous()


def ssim(a: Tensor, b: Tensor, *, data_range: float = 1.0, window: int = 11, sigma: float = 1.5) -> Tensor:
    """Structural similarity (Wang et al. 2004), Gaussian window 11 / sigma 1.5, mean over channels.

    Same definition as ``skimage.metrics.structural_similarity(..., gaussian_weights=True, sigma=1.5,
    use_sample_covariance=False, data_range=1)``: local statistics over valid window positions only.

    Returns
    -------
    Tensor, shape (N,)
    """
    _check_pair(a, b)
    a = a.float()
    b = b.float()
    c = a.shape[1]
    kernel = _gaussian_window(window, sigma, c, a.device)

    def filt(z: Tensor) -> Tensor:
        return F.conv2d(z, kernel, groups=c)

    mu_a, mu_b = filt(a), filt(b)
    var_a = filt(a * a) - mu_a.square()
    var_b = filt(b * b) - mu_b.square()
    cov = filt(a * b) - mu_a * mu_b
    c1 = (0.01 * data_range) ** 2
    c2 = (0.03 * data_range) ** 2
    s = ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / ((mu_a.square() + mu_b.square() + c1) * (var_a + var_b + c2))
    return s.mean(dim=(1, 2, 3))


def psnr(a: Tensor, b: Tensor, *, data_range: float = 1.0) -> Tensor:
    """Peak signal-to-noise ratio in dB per image, shape (N,); identical images give +inf."""
    _check_pair(a, b)
    mse = (a.float() - b.float()).square().mean(dim=(1, 2, 3))
    return 10.0 * torch.log10(data_range**2 / mse) if mse.numel() else mse
