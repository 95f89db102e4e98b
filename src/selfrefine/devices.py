"""Where tensors run: one place that picks the device for training and inference."""

from __future__ import annotations

import os

import torch
from torch import nn


def device() -> torch.device:
    """The device training and inference run on: a CUDA GPU when there is one, else the CPU.

    Under torchrun, rank ``LOCAL_RANK``'s GPU (GPU 0 otherwise).
    """
    if torch.cuda.is_available():
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
    return torch.device("cpu")


def model_device(model: nn.Module) -> torch.device:
    """The device ``model``'s parameters live on (the CPU for a model without parameters)."""
    return next(model.parameters(), torch.empty(0)).device
