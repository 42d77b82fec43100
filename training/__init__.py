"""training stage: the DeepFlash network and loss, ``prep train``, ``prep evaluate``, ``prep enhance``.

The public names load lazily (PEP 562): ``prep`` imports ``training.cli`` at start-up, and importing this
package must not pull in torch then.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from acquisition.lazy import lazy_exports

from .errors import TrainingError

_EXPORTS = {
    "_checkpoint": ("load_checkpoint", "load_model", "save_model_checkpoint"),
    "_data": ("Batch", "ShardDataset", "batch_to_device", "dataset_parameters"),
    "_enhance": ("EnhanceResult", "EnhanceTreeResult", "Enhancer", "enhance", "enhance_tree", "feather_mask",
                 "framing_square", "list_photos"),
    "_evaluate": ("EvaluationResult", "evaluate"),
    "_loss": ("ENCODINGS", "accuracy", "decode_prediction", "deepflash_loss", "encode_sample", "psnr", "ssim"),
    "_model": ("DeepFlashNet", "load_encoder_weights"),
    "_train": ("TrainConfig", "TrainResult", "train"),
}
_WHERE = {name: module for module, names in _EXPORTS.items() for name in names}

__all__ = ["ENCODINGS", "Batch", "DeepFlashNet", "EnhanceResult", "EnhanceTreeResult", "Enhancer", "EvaluationResult",
           "ShardDataset", "TrainConfig", "TrainResult", "TrainingError", "accuracy", "batch_to_device",
           "dataset_parameters", "decode_prediction", "deepflash_loss", "encode_sample", "enhance", "enhance_tree",
           "evaluate", "feather_mask", "framing_square", "list_photos", "load_checkpoint", "load_encoder_weights",
           "load_model", "psnr", "save_model_checkpoint", "ssim", "train"]


__getattr__, __dir__ = lazy_exports(__name__, _WHERE, globals(), __all__)


if TYPE_CHECKING:  # static names for type checkers and IDEs
    from ._checkpoint import load_checkpoint, load_model, save_model_checkpoint
    from ._data import Batch, ShardDataset, batch_to_device, dataset_parameters
    from ._enhance import (
        Enhancer,
        EnhanceResult,
        EnhanceTreeResult,
        enhance,
        enhance_tree,
        feather_mask,
        framing_square,
        list_photos,
    )
    from ._evaluate import EvaluationResult, evaluate
    from ._loss import ENCODINGS, accuracy, decode_prediction, deepflash_loss, encode_sample, psnr, ssim
    from ._model import DeepFlashNet, load_encoder_weights
    from ._train import TrainConfig, TrainResult, train
