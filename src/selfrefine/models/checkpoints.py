"""Self-describing checkpoints: the registry name, the class, the constructor kwargs and the weights.

Any later stage rebuilds the model with ``MODEL(**kwargs)`` and needs no training config (as Demucs's
``states.serialize_model`` does). Provenance holds what defines the model (labels, pools, steps, the
curve history), never wall time, so the same run gives the same file.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from selfrefine.models.registry import build
from selfrefine.outputs import write_torch
from selfrefine.paths import require


def save_checkpoint(path: str | Path, model: nn.Module, name: str, kwargs: dict[str, Any], **provenance: Any) -> None:
    """Write ``{model, class, kwargs, state, provenance}`` atomically; ``name`` is the registry name."""
    package = {
        "model": name,
        "class": type(model).__name__,
        "kwargs": kwargs,
        "state": model.state_dict(),
        "provenance": provenance,
    }
    write_torch(path, package)  # not torch.save(path): it names the archive after the file


def load_checkpoint(path: str | Path) -> tuple[nn.Module, dict[str, Any]]:
    """Rebuild the model a checkpoint holds, in eval mode, on the CPU.

    Returns:
        (model, checkpoint dict without the weights).

    Raises:
        UserError: no checkpoint there (names the stage to run first).
    """
    path = Path(path)
    require(path)
    package = torch.load(path, map_location="cpu", weights_only=False)
    model = build(package["model"], package["kwargs"], package.get("class"))
    model.load_state_dict(package.pop("state"))
    return model.eval(), package
