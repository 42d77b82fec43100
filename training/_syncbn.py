"""Batch normalisation with statistics over the whole global batch, for CPU (gloo) process groups.

``nn.SyncBatchNorm`` runs on GPUs only. Without synchronisation each ``torchrun`` process would normalise with
the statistics of its own slice of the batch, so N processes would not train the network one process trains
on the same global batch. This module sums the per-channel count, sum and sum of squares over all processes
with an all-reduce whose backward all-reduces the gradients too, which makes forward and backward those of one
BatchNorm over the global batch (checked against one process in tests/test_training.py).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

__all__ = ["GlobalBatchNorm2d", "convert_global_batchnorm"]


class _AllReduceSum(torch.autograd.Function):
    """Sum over processes; the gradient of every process's input is the sum of all processes' gradients."""

    @staticmethod
    def forward(ctx: object, x: Tensor) -> Tensor:
        import torch.distributed as dist

        out = x.clone()
        dist.all_reduce(out)
        return out

    @staticmethod
    def backward(ctx: object, grad: Tensor) -> Tensor:
        import torch.distributed as dist

        out = grad.clone()
        dist.all_reduce(out)
        return out


class GlobalBatchNorm2d(nn.BatchNorm2d):
    """``nn.BatchNorm2d`` whose training-mode statistics span every process of the default group."""

    def forward(self, x: Tensor) -> Tensor:
        import torch.distributed as dist

        if not self.training or not dist.is_available() or not dist.is_initialized() or dist.get_world_size() == 1:
            return super().forward(x)
        channels = x.shape[1]
        xf = x.float()
        count = torch.full((1,), xf.numel() / channels, dtype=xf.dtype, device=xf.device)
        packed = torch.cat([xf.sum(dim=(0, 2, 3)), xf.square().sum(dim=(0, 2, 3)), count])
        packed = _AllReduceSum.apply(packed)
        total = packed[-1]
        mean = packed[:channels] / total
        var = (packed[channels:2 * channels] / total - mean.square()).clamp_min(0.0)
        if self.track_running_stats and self.running_mean is not None and self.running_var is not None:
            with torch.no_grad():
                self.num_batches_tracked += 1
                momentum = self.momentum if self.momentum is not None else 1.0 / float(self.num_batches_tracked)
                unbiased = var * total / (total - 1).clamp_min(1.0)
                self.running_mean.mul_(1 - momentum).add_(momentum * mean.detach())
                self.running_var.mul_(1 - momentum).add_(momentum * unbiased.detach())
        shape = (1, channels, 1, 1)
        out = (xf - mean.view(shape)) * torch.rsqrt(var.view(shape) + self.eps)
        if self.affine:
            out = out * self.weight.view(shape) + self.bias.view(shape)
        return out.to(x.dtype)


def convert_global_batchnorm(module: nn.Module) -> nn.Module:
    """Replace every ``nn.BatchNorm2d`` in ``module`` by a :class:`GlobalBatchNorm2d` with the same state."""
    if isinstance(module, nn.BatchNorm2d) and not isinstance(module, GlobalBatchNorm2d):
        replacement = GlobalBatchNorm2d(module.num_features, eps=module.eps, momentum=module.momentum,
                                        affine=module.affine, track_running_stats=module.track_running_stats)
        # Share the very Parameter and buffer objects, so an optimizer built earlier still updates them.
        if module.affine:
            replacement.weight, replacement.bias = module.weight, module.bias
        if module.track_running_stats:
            replacement.running_mean, replacement.running_var = module.running_mean, module.running_var
            replacement.num_batches_tracked = module.num_batches_tracked
        replacement.train(module.training)
        return replacement
    for name, child in module.named_children():
        setattr(module, name, convert_global_batchnorm(child))
    return module
