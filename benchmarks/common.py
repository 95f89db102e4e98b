"""What every benchmark report records about the machine it ran on."""

from __future__ import annotations

import importlib.metadata
import os
import platform


def machine_info() -> dict:
    """CPU count, platform and the versions of the libraries the numbers depend on."""
    versions = {
        name: importlib.metadata.version(name) for name in ("numpy", "torch", "timm", "demucs", "openunmix", "museval")
    }
    return {
        "cpu_count": os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        **versions,
    }
