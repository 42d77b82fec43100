"""training stage: the DeepFlash network and loss, ``prep train``, ``prep evaluate``, ``prep enhance``."""

from ._checkpoint import load_checkpoint, load_model
from ._data import Batch, ShardDataset, batch_to_device, dataset_parameters
from ._enhance import Enhancer, EnhanceResult, EnhanceTreeResult, enhance, enhance_tree, feather_mask, framing_square
from ._evaluate import EvaluationResult, evaluate
from ._loss import ENCODINGS, accuracy, decode_prediction, deepflash_loss, encode_sample, psnr, ssim
from ._model import DeepFlashNet, load_encoder_weights
from ._train import TrainConfig, TrainResult, train
from .errors import TrainingError

__all__ = ["ENCODINGS", "Batch", "DeepFlashNet", "EnhanceResult", "EnhanceTreeResult", "Enhancer", "EvaluationResult",
           "ShardDataset", "TrainConfig", "TrainResult", "TrainingError", "accuracy", "batch_to_device",
           "dataset_parameters", "decode_prediction", "deepflash_loss", "encode_sample", "enhance", "enhance_tree",
           "evaluate", "feather_mask", "framing_square", "load_checkpoint", "load_encoder_weights", "load_model",
           "psnr", "ssim", "train"]
