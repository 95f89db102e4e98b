"""The model registry: every model the pipeline builds, by name, and how a params block becomes one.

Names are ``classifier`` and one per separator (``demucs``, ``xumx``: its block ``separators.<name>`` in
params.yaml). Each names a module that defines ``MODEL`` (the class) and, for a separator, ``LOSSES``
(the losses ``separators.<name>.train.loss`` chooses from): the classifier's is :data:`CLASSIFIER`, a
separator's is ``selfrefine.models.separators.<name>``, so the separators registered are the modules of
that package (:func:`separators`). Modules are imported by name only when a model is built: this file
imports no torch, and a stage imports (and DVC tracks) only the model it builds.
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import pkgutil
from collections.abc import Callable, Mapping
from types import ModuleType
from typing import Any

from selfrefine.errors import UserError

CLASSIFIER = "selfrefine.models.classifier"
"""Module of the instrument classifier."""

SEPARATORS = "selfrefine.models.separators"
"""Package holding one module per separator, named as the separator (its params block, its stage key)."""

FILLED: dict[str, tuple[str, ...]] = {
    "classifier": ("sample_rate",),
    "separator": ("sources", "audio_channels", "samplerate", "segment"),
}
"""Constructor arguments the pipeline fills in from the data (and, for a separator, ``segment``: its
training segment length, which is also the chunk length it separates long songs in); a params block
must not set them."""


class ModelError(UserError):
    """A model block or loss that its model rejects; one line naming the key and the fix."""


def separators() -> list[str]:
    """The registered separators: the modules of the :data:`SEPARATORS` package."""
    package = importlib.util.find_spec(SEPARATORS)
    return sorted(m.name for m in pkgutil.iter_modules(package.submodule_search_locations) if not m.ispkg)


def module(name: str) -> ModuleType:
    """The module of model ``name`` (``classifier`` or a separator)."""
    if name == "classifier":
        return importlib.import_module(CLASSIFIER)
    if name not in separators():
        raise ModelError(f"unknown separator '{name}'; registered: {', '.join(separators())}")
    return importlib.import_module(f"{SEPARATORS}.{name}")


def filled(name: str) -> tuple[str, ...]:
    """The constructor arguments the pipeline fills in for model ``name``."""
    return FILLED["classifier" if name == "classifier" else "separator"]


def block_key(name: str) -> str:
    """Where model ``name``'s params live: ``classifier`` or ``separators.<name>``."""
    return name if name == "classifier" else f"separators.{name}"


def check_block(name: str, block: Mapping[str, Any]) -> type:
    """Check model ``name``'s params block (``model`` under :func:`block_key`) against its constructor.

    Returns:
        The model class.

    Raises:
        ModelError: a key the constructor does not take, or one the pipeline fills in.
    """
    cls = module(name).MODEL
    valid = [p for p in inspect.signature(cls).parameters if p not in ("self", *filled(name))]
    for key in block:
        if key in filled(name):
            raise ModelError(
                f"{block_key(name)}.model.{key}: set by the pipeline from audio/data params; remove it here"
            )
        if key not in valid:
            from selfrefine.config import unknown_key_error

            raise ModelError(str(unknown_key_error(f"{block_key(name)}.model.", key, valid)))
    return cls


def loss(name: str, choice: str) -> Callable[..., Any]:
    """Separator ``name``'s loss ``choice`` (``separators.<name>.train.loss``): ``(model, mix, sources) -> scalar``."""
    losses = module(name).LOSSES
    if choice not in losses:
        raise ModelError(
            f"{block_key(name)}.train.loss: '{choice}' is not a loss of {name}; use one of {', '.join(losses)}"
        )
    return losses[choice]


def build(name: str, kwargs: Mapping[str, Any], cls_name: str | None = None) -> Any:
    """Instantiate model ``name`` with ``kwargs`` (seed the RNG first: this draws the initial weights).

    ``cls_name`` (a checkpoint's ``class``) picks one of the module's ``VARIANTS`` instead of ``MODEL``
    (the classifier's :class:`~selfrefine.models.classifier.FoldEnsemble`).

    Raises:
        ModelError: the constructor rejects a value (one line naming the model and the reason).
    """
    mod = module(name)
    cls = mod.MODEL
    if cls_name not in (None, cls.__name__):
        variants = {v.__name__: v for v in getattr(mod, "VARIANTS", ())}
        if cls_name not in variants:
            raise ModelError(f"{name}: class {cls_name} is not {cls.__name__} or one of its variants")
        cls = variants[cls_name]
    try:
        return cls(**kwargs)
    except (TypeError, ValueError, RuntimeError, AssertionError) as err:
        args = ", ".join(f"{k}={v!r}" for k, v in kwargs.items())
        raise ModelError(f"{name}: {cls.__name__}({args}): {err}") from None
