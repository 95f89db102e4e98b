"""Model registry and self-describing checkpoints.

A checkpoint stores the model's class name, its constructor kwargs and its weights (plus provenance),
so any later stage rebuilds it with ``klass(**kwargs)`` and needs no training config (as Demucs's
``states.serialize_model`` does).
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

import torch
from torch import nn

from selfrefine.outputs import atomic_path

REGISTRY: dict[str, str] = {
    "InstrumentClassifier": "selfrefine.classifier:InstrumentClassifier",
    "HDemucs": "demucs.hdemucs:HDemucs",
    "CrossUMX": "selfrefine.xumx:CrossUMX",
}
"""Class name -> ``module:attribute`` of every model a checkpoint may hold."""

SEPARATORS: dict[str, str] = {"demucs": "HDemucs", "xumx": "CrossUMX"}
"""Separator params section / stage suffix -> registered model class."""

BLOCKS: dict[str, tuple[str, tuple[str, ...]]] = {
    "classifier": ("InstrumentClassifier", ("sample_rate",)),
    "demucs": ("HDemucs", ("sources", "audio_channels", "samplerate", "segment")),
    "xumx": ("CrossUMX", ("sources", "audio_channels", "samplerate", "segment")),
}
"""params.yaml section -> (model class, constructor arguments the pipeline fills in: the data's sources,
channels and rate, and a separator's ``segment``, its training segment length, which is also the
chunk length it separates long songs in)."""


def model_class(name: str) -> type[nn.Module]:
    """The class registered as ``name``."""
    module, attr = REGISTRY[name].split(":")
    return getattr(importlib.import_module(module), attr)


def check_blocks(params: Any) -> None:
    """Check every model block of ``params`` against its constructor (see :mod:`selfrefine.config`)."""
    from selfrefine.config import check_kwargs

    for section, (name, filled) in BLOCKS.items():
        check_kwargs(f"{section}.model.", getattr(params, section).model, model_class(name), filled)


def build(name: str, kwargs: dict[str, Any]) -> nn.Module:
    """Instantiate registered model ``name`` with ``kwargs``.

    Raises:
        ParamsError: the constructor rejects a value (one line naming the model and the reason).
    """
    from selfrefine.config import ParamsError

    try:
        return model_class(name)(**kwargs)
    except (TypeError, ValueError, RuntimeError, AssertionError) as err:
        raise ParamsError(f"{name}({', '.join(f'{k}={v!r}' for k, v in kwargs.items())}): {err}") from None


def save_checkpoint(path: str | Path, model: nn.Module, name: str, kwargs: dict[str, Any], **provenance: Any) -> None:
    """Write ``{class, kwargs, state, provenance}`` atomically."""
    with atomic_path(path) as tmp:
        torch.save({"class": name, "kwargs": kwargs, "state": model.state_dict(), "provenance": provenance}, tmp)


def load_checkpoint(path: str | Path) -> tuple[nn.Module, dict[str, Any]]:
    """Rebuild the model a checkpoint holds, in eval mode.

    Returns:
        (model, checkpoint dict without the weights).
    """
    package = torch.load(path, map_location="cpu", weights_only=False)
    model = build(package["class"], package["kwargs"])
    model.load_state_dict(package.pop("state"))
    return model.eval(), package
