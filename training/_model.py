"""The DeepFlash network: a VGG-16 encoder and the skip-connected decoder of Eilertsen et al. 2017 (hdrcnn).

Layout (timm order): configuration tables, blocks, the model, the encoder-weight adapter.

The encoder is the 13 convolutions of VGG-16 with the parameter names of torchvision's ``vgg16().features``
(``features.0``, ``features.2``, ... ``features.28``), so a torchvision or converted VGG-Face state dict saved to
a local file loads with :func:`load_encoder_weights`. The decoder (NOTES of the paper): a 3x3 conv + BN +
activation after pool5; then five stages, each a 4x4 stride-2 transposed conv + BN + LeakyReLU(0.2),
concatenation with the matching encoder block's last pre-pool activation and a 1x1 conv that fuses them; finally
a 1x1 conv to 3 channels and a sigmoid, so the output lies in [0, 1].

Beyond the paper, ``upsample="resize"`` replaces each transposed convolution by a bilinear x2 resize and a 3x3
convolution with the same channels. A 4x4 stride-2 transposed convolution gives each of the four output phases
its own taps, so it prints a grid of period 2, 4, ... 32 px (one per stage) unless training happens to equalise
them; resize + convolution treats every output pixel alike and cannot (Odena, Dumoulin and Olah,
"Deconvolution and Checkerboard Artifacts", Distill 2016, doi:10.23915/distill.00003; see
:func:`training.checkerboard_energy`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import Final, Literal

import torch
from torch import Tensor, nn

from .errors import TrainingError

__all__ = ["NORMALIZATIONS", "UPSAMPLINGS", "VGG16_CONV_INDICES", "DeepFlashNet", "load_encoder_weights"]

#: VGG-16 configuration D: channels per conv, "M" = 2x2 max-pool.
_VGG16: Final = (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M")
#: Indices of the convolutions inside torchvision's ``vgg16().features``.
VGG16_CONV_INDICES: Final = (0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28)
#: Input normalisation the encoder weights expect: ImageNet mean/std on [0, 1] input (torchvision), or
#: 0-255 input minus the RGB mean of VGG-Face (MatConvNet conversion), or none.
NORMALIZATIONS: Final = ("imagenet", "vggface", "none")
_IMAGENET_MEAN: Final = (0.485, 0.456, 0.406)
_IMAGENET_STD: Final = (0.229, 0.224, 0.225)
_VGGFACE_MEAN: Final = (129.186, 104.762, 93.594)

#: Decoder upsampling: the paper's 4x4 stride-2 transposed convolution, or bilinear x2 + 3x3 convolution.
UPSAMPLINGS: Final = ("deconv", "resize")

Normalization = Literal["imagenet", "vggface", "none"]
Upsampling = Literal["deconv", "resize"]


def _channels(base: int, width: float) -> int:
    return max(1, round(base * width))


def _upsampler(kind: Upsampling, in_ch: int, out_ch: int, *, bias: bool) -> nn.Module:
    """x2 upsampling with a learned projection from ``in_ch`` to ``out_ch`` channels."""
    if kind == "deconv":  # the paper's; parameter names up.weight / up.bias as in every earlier checkpoint
        return nn.ConvTranspose2d(in_ch, out_ch, kernel_size=4, stride=2, padding=1, bias=bias)
    return nn.Sequential(nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False),
                         nn.Conv2d(in_ch, out_ch, kernel_size=3, padding=1, bias=bias))


class _UpStage(nn.Module):
    """One decoder stage: x2 upsampling + BN + LeakyReLU, concat with the skip, 1x1 fuse."""

    def __init__(self, in_ch: int, out_ch: int, skip_ch: int, *, norm_layer: type[nn.Module],
                 act_layer: type[nn.Module], slope: float, upsample: Upsampling = "deconv") -> None:
        super().__init__()
        self.up = _upsampler(upsample, in_ch, out_ch, bias=norm_layer is nn.Identity)
        self.norm = norm_layer(out_ch) if norm_layer is not nn.Identity else nn.Identity()
        self.act = act_layer(slope)
        self.fuse = nn.Conv2d(out_ch + skip_ch, out_ch, kernel_size=1)

    def forward(self, x: Tensor, skip: Tensor) -> Tensor:
        x = self.act(self.norm(self.up(x)))
        return self.fuse(torch.cat([x, skip], dim=1))


class DeepFlashNet(nn.Module):
    """VGG-16 encoder + hdrcnn-style decoder; input and output N x 3 x H x W in [0, 1].

    Parameters
    ----------
    width : float
        Channel multiplier: 1.0 is the paper's network (VGG-16's 64..512 channels); 1/8 gives a thin network for
        tests and CPU demos. Encoder weights from a file load only at width 1.
    normalization : {"imagenet", "vggface", "none"}
        How the [0, 1] input is normalised before the first conv; it must match the encoder weights
        (ImageNet mean/std for torchvision's VGG-16, 0-255 minus the RGB mean for VGG-Face).
    norm_layer : type
        Normalisation of the decoder (``nn.BatchNorm2d`` as in the paper, ``nn.Identity`` for none).
    leaky_slope : float
        Negative slope of the decoder's LeakyReLU (the paper: 0.2).
    init_weights : bool
        Draw the initial weights (False when a checkpoint overwrites them anyway: saves ~1 s at full width).
    head_init : {"xavier", "identity"}
        The last layer's initialisation: Xavier as in the paper, or zero weights so the network starts at
        y = 1/2, whose prediction is the flash image itself (the identity baseline); training then learns the
        relighting as a correction of it, which helps short runs on little data (``prep demo``).
    upsample : {"deconv", "resize"}
        The decoder's x2 upsampling: ``deconv`` is the paper's 4x4 stride-2 transposed convolution (and the
        parameter layout of every earlier checkpoint); ``resize`` is bilinear x2 followed by a 3x3 convolution
        with the same channels, which cannot print a checkerboard (Odena et al., Distill 2016).

    Raises
    ------
    ValueError
        From :meth:`forward` when a side of the input is not a multiple of 32 (five 2x poolings).

    Examples
    --------
    >>> net = DeepFlashNet(width=1 / 8)
    >>> net(torch.rand(1, 3, 64, 96)).shape
    torch.Size([1, 3, 64, 96])
    """

    def __init__(self, *, width: float = 1.0, normalization: Normalization = "imagenet",
                 norm_layer: type[nn.Module] = nn.BatchNorm2d, leaky_slope: float = 0.2,
                 init_weights: bool = True, head_init: Literal["xavier", "identity"] = "xavier",
                 upsample: Upsampling = "deconv") -> None:
        super().__init__()
        if upsample not in UPSAMPLINGS:
            raise ValueError(f"upsample must be one of {UPSAMPLINGS}, not {upsample!r}")
        self.upsample = upsample
        if head_init not in ("xavier", "identity"):
            raise ValueError(f"head_init must be 'xavier' or 'identity', not {head_init!r}")
        self.head_init = head_init
        if not (width > 0 and math.isfinite(width)):
            raise ValueError(f"width must be positive, got {width}")
        if normalization not in NORMALIZATIONS:
            raise ValueError(f"normalization must be one of {NORMALIZATIONS}, not {normalization!r}")
        self.width = float(width)
        self.normalization = normalization
        layers: list[nn.Module] = []
        self._skip_indices: list[int] = []  # the ReLU before each max-pool
        skip_channels: list[int] = []
        in_ch = 3
        for item in _VGG16:
            if item == "M":
                self._skip_indices.append(len(layers) - 1)
                skip_channels.append(in_ch)
                layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
            else:
                out_ch = _channels(int(item), width)
                layers += [nn.Conv2d(in_ch, out_ch, kernel_size=3, padding=1), nn.ReLU()]
                in_ch = out_ch
        self.features = nn.Sequential(*layers)
        bottleneck = in_ch
        self.bottleneck = nn.Sequential(
            nn.Conv2d(bottleneck, bottleneck, kernel_size=3, padding=1, bias=norm_layer is nn.Identity),
            norm_layer(bottleneck) if norm_layer is not nn.Identity else nn.Identity(),
            nn.ReLU(),
        )
        stages = []
        ch = bottleneck
        for skip_ch in reversed(skip_channels):  # 1/32 -> 1/16 -> ... -> 1/1
            stages.append(_UpStage(ch, skip_ch, skip_ch, norm_layer=norm_layer, act_layer=nn.LeakyReLU,
                                   slope=leaky_slope, upsample=upsample))
            ch = skip_ch
        self.decoder = nn.ModuleList(stages)
        self.head = nn.Conv2d(ch, 3, kernel_size=1)
        self._set_normalization(normalization)
        if init_weights:
            self._init_weights()

    def _set_normalization(self, normalization: Normalization) -> None:
        if normalization == "imagenet":
            scale = [1.0 / s for s in _IMAGENET_STD]
            shift = [-m / s for m, s in zip(_IMAGENET_MEAN, _IMAGENET_STD, strict=True)]
        elif normalization == "vggface":
            scale = [255.0] * 3
            shift = [-m for m in _VGGFACE_MEAN]
        else:
            scale, shift = [1.0] * 3, [0.0] * 3
        # Not persistent: the normalisation is part of the config, so state dicts stay torchvision-shaped.
        self.register_buffer("_in_scale", torch.tensor(scale).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("_in_shift", torch.tensor(shift).view(1, 3, 1, 1), persistent=False)

    def _init_weights(self) -> None:
        """Encoder: He (fan-out) as torchvision's VGG; decoder: truncated normal; the last layer: Xavier or zero."""
        for module in self.features.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
                nn.init.zeros_(module.bias)
        for part in (self.bottleneck, self.decoder):
            for module in part.modules():
                if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d)):
                    fan_in = module.weight[0].numel() if isinstance(module, nn.Conv2d) else \
                        module.weight.shape[0] * module.weight[0, 0].numel() // 4
                    std = math.sqrt(2.0 / max(1, fan_in))
                    nn.init.trunc_normal_(module.weight, std=std, a=-2 * std, b=2 * std)
                    if module.bias is not None:
                        nn.init.zeros_(module.bias)
                elif isinstance(module, nn.BatchNorm2d):
                    nn.init.ones_(module.weight)
                    nn.init.zeros_(module.bias)
        if self.head_init == "identity":  # sigmoid(0) = 1/2 everywhere: the prediction starts as the flash image
            nn.init.zeros_(self.head.weight)
        else:
            nn.init.xavier_uniform_(self.head.weight)
        nn.init.zeros_(self.head.bias)

    def forward_features(self, x: Tensor) -> tuple[Tensor, list[Tensor]]:
        """Run the encoder; return the pool5 output and the five pre-pool activations (finest first)."""
        x = x * self._in_scale + self._in_shift
        skips: list[Tensor] = []
        skip_at = set(self._skip_indices)
        for index, layer in enumerate(self.features):
            x = layer(x)
            if index in skip_at:
                skips.append(x)
        return x, skips

    def forward(self, x: Tensor) -> Tensor:
        """Map N x 3 x H x W input in [0, 1] to N x 3 x H x W output in [0, 1]; H and W multiples of 32."""
        if x.ndim != 4 or x.shape[1] != 3:
            raise ValueError(f"expected input of shape N x 3 x H x W, got {tuple(x.shape)}")
        h, w = x.shape[-2:]
        if h % 32 or w % 32:
            raise ValueError(f"input sides must be multiples of 32 (five 2x poolings), got {h} x {w}; "
                             "resize or pad the image")
        x, skips = self.forward_features(x)
        x = self.bottleneck(x)
        for stage, skip in zip(self.decoder, reversed(skips), strict=True):
            x = stage(x, skip)
        # The head runs in float32 even under bf16 autocast: bf16 would quantise y near 1/2 to steps of 1/256,
        # i.e. the predicted lighting difference 2y - 1 to steps of 1/128 (visible banding).
        with torch.autocast(device_type=x.device.type, enabled=False):
            return torch.sigmoid(self.head(x.float()))


def load_encoder_weights(model: DeepFlashNet, source: str | Path | Mapping[str, Tensor]) -> list[str]:
    """Copy VGG-16 convolution weights into ``model.features`` from a state dict or a local file.

    Parameters
    ----------
    model : DeepFlashNet
        At width 1 (the encoder's shapes must match VGG-16's).
    source : path or mapping
        A file saved with ``torch.save`` holding a torchvision-keyed state dict (``features.N.weight`` /
        ``.bias``, other keys such as ``classifier.*`` ignored; a ``features.`` prefix may also be absent, and
        a ``state_dict`` wrapper is unwrapped), or such a mapping.

    Returns
    -------
    list of str
        The ``features.*`` keys that were loaded (26: 13 weights and 13 biases).

    Raises
    ------
    TrainingError
        When the file cannot be read or lacks a convolution, or a shape does not match.
    """
    path = None
    if isinstance(source, (str, Path)):
        path = Path(source)
        from acquisition.files import require_regular

        require_regular(path, error=TrainingError)  # a FIFO or a folder: one line, not a hang
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except FileNotFoundError as exc:
            raise TrainingError("no such encoder-weights file", path=path) from exc
        except Exception as exc:  # torch raises many types for a file that is not a state dict
            raise TrainingError(f"cannot read encoder weights ({exc.__class__.__name__}: {exc})", path=path,
                                hint="save a VGG-16 state dict with torch.save(model.state_dict(), FILE)") from exc
    else:
        state = source
    if isinstance(state, Mapping) and "state_dict" in state and isinstance(state["state_dict"], Mapping):
        state = state["state_dict"]
    if not isinstance(state, Mapping):
        raise TrainingError("encoder weights are not a state dict", path=path)
    own = model.features.state_dict()
    loaded: dict[str, Tensor] = {}
    for index in VGG16_CONV_INDICES:
        for kind in ("weight", "bias"):
            key = f"{index}.{kind}"
            value = state.get(f"features.{key}", state.get(key))
            if value is None:
                raise TrainingError(f"encoder weights lack features.{key}", path=path,
                                    hint="give a torchvision vgg16 (or converted VGG-Face) state dict")
            if tuple(value.shape) != tuple(own[key].shape):
                raise TrainingError(f"features.{key} has shape {tuple(value.shape)}, the network wants "
                                    f"{tuple(own[key].shape)}", path=path,
                                    hint="encoder weights load only at width 1 (the full VGG-16)")
            loaded[key] = value.detach().to(own[key].dtype)
    with torch.no_grad():
        for key, value in loaded.items():
            own[key].copy_(value)
    return [f"features.{key}" for key in loaded]
