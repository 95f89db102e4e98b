"""selfrefine: self-refining pseudo labels for music source separation with noisy-labelled stems.

Koo et al., "Self-refining of pseudo labels for music source separation with noisy labeled data",
ISMIR 2023 (arXiv:2307.12576), as a library driven by a DVC pipeline.
"""

CLASSES: tuple[str, ...] = ("bass", "drums", "other", "vocals")
"""The four MUSDB18 / SDX'23 stem classes, in the order every tensor and table uses."""

__version__ = "0.1.0"
