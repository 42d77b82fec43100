"""Public names of the training stage (read by lazy_loader at run time and by type checkers)."""

# Type checkers take these names as the package's interface; lazy_loader reads the imports below.
__all__ = [
    "DECODER_PERIODS",
    "ENCODINGS",
    "FACE_CHOICES",
    "PASTES",
    "UPSAMPLINGS",
    "Batch",
    "DeepFlashNet",
    "EnhanceResult",
    "EnhanceTreeResult",
    "Enhancer",
    "EvaluationResult",
    "ShardDataset",
    "TrainConfig",
    "TrainResult",
    "TrainingError",
    "accuracy",
    "batch_to_device",
    "border_step",
    "checkerboard_energy",
    "dataset_parameters",
    "decode_prediction",
    "deepflash_loss",
    "encode_sample",
    "enhance",
    "enhance_tree",
    "evaluate",
    "feather_mask",
    "framing_square",
    "list_photos",
    "load_checkpoint",
    "load_encoder_weights",
    "load_model",
    "open_shards",
    "psnr",
    "resolve_device",
    "save_model_checkpoint",
    "ssim",
    "train",
]


from ._checkerboard import DECODER_PERIODS, checkerboard_energy
from ._checkpoint import load_checkpoint, load_model, save_model_checkpoint
from ._data import Batch, ShardDataset, batch_to_device, dataset_parameters, open_shards
from ._device import resolve_device
from ._enhance import (
    FACE_CHOICES,
    PASTES,
    Enhancer,
    EnhanceResult,
    border_step,
    enhance,
    feather_mask,
    framing_square,
)
from ._enhance_tree import EnhanceTreeResult, enhance_tree, list_photos
from ._evaluate import EvaluationResult, evaluate
from ._loss import ENCODINGS, accuracy, decode_prediction, deepflash_loss, encode_sample, psnr, ssim
from ._model import UPSAMPLINGS, DeepFlashNet, load_encoder_weights
from ._train import TrainConfig, TrainResult, train
from .errors import TrainingError
