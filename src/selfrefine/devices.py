"""Where tensors run: one place that picks the device for training and inference."""

from __future__ import annotations

import torch
from torch import nn


def device() -> torch.device:
    """The device training and inference run on: the first CUDA GPU when there is one, else the CPU."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def model_device(model: nn.Module) -> torch.device:
    """The device ``model``'s parameters live on (the CPU for a model without parameters)."""
    return next(model.parameters(), torch.empty(0)).device
