"""params.yaml: the one source of configuration, loaded into validated, typed config objects.

DVC does not validate ``dvc exp run -S key=value`` (a typo silently adds a key), so every stage loads
the file through :func:`load_params`, which rejects unknown keys (naming the closest valid one), wrong
types and out-of-range values with a one-line :class:`ParamsError`.

Model blocks (``classifier.model``, ``demucs.model``, ``xumx.model``) map 1:1 onto their model's
constructor keyword arguments and are checked against its signature; the arguments the data decides
(sample rate, channels, sources) are filled in by the stage, never written twice.
"""

from __future__ import annotations

import dataclasses
import difflib
import inspect
import types
import typing
from collections.abc import Callable, Mapping, MutableMapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from selfrefine.errors import UserError

LABEL_TABLES = ("noisy", "refined_1", "refined_2", "refined_by_clean", "clean")
"""Label tables a separator can train on (``separate.labels``); each is ``data/labels/<name>.csv``."""


class ParamsError(UserError):
    """A bad params file or value; the message is one line naming the key and the fix."""


def _check(predicate: Callable[[Any], bool], expected: str) -> dict[str, Any]:
    """Field metadata: a range/choice check and the words that describe a valid value."""
    return {"check": predicate, "expected": expected}


def _positive() -> dict[str, Any]:
    return _check(lambda v: v > 0, "> 0")


def _non_negative() -> dict[str, Any]:
    return _check(lambda v: v >= 0, ">= 0")


def _unit() -> dict[str, Any]:
    return _check(lambda v: 0 <= v <= 1, "in [0, 1]")


def _one_of(*choices: str) -> dict[str, Any]:
    return _check(lambda v: v in choices, "one of " + ", ".join(choices))


@dataclass(frozen=True)
class AudioParams:
    """Rate and channel count every stage works at."""

    sample_rate: int = field(default=16000, metadata=_check(lambda v: 4000 <= v <= 192000, "in [4000, 192000]"))
    channels: int = field(default=1, metadata=_check(lambda v: v in (1, 2), "1 or 2"))


@dataclass(frozen=True)
class DataParams:
    """Where the stems are and how bad files are treated."""

    root: str = "data/generated"
    truth: bool = True
    convert: bool = True
    on_bad_file: str = field(default="error", metadata=_one_of("error", "skip"))
    silence_db: float = field(default=-60.0, metadata=_check(lambda v: v < 0, "< 0 (dBFS)"))


@dataclass(frozen=True)
class GenerateParams:
    """Size of the embedded (generated) dataset."""

    train_songs: int = field(default=160, metadata=_check(lambda v: v >= 2, ">= 2"))
    test_songs: int = field(default=30, metadata=_check(lambda v: v >= 1, ">= 1"))
    seconds: float = field(default=8.0, metadata=_check(lambda v: v >= 1, ">= 1"))


@dataclass(frozen=True)
class NoiseKinds:
    """Relative weights of the corruption kinds (normalised; at least one > 0)."""

    swap: float = field(default=0.5, metadata=_non_negative())
    merge: float = field(default=0.5, metadata=_non_negative())
    silent: float = field(default=0.0, metadata=_non_negative())


@dataclass(frozen=True)
class NoiseParams:
    """Label-noise injection, modelled on the SDX'23 label-noise track."""

    rate: float = field(default=0.3, metadata=_unit())
    kinds: NoiseKinds = NoiseKinds()


@dataclass(frozen=True)
class MixTrainParams:
    """Mix-training of the instrument classifier on random mixtures of stems."""

    steps: int = field(default=500, metadata=_positive())
    batch_size: int = field(default=32, metadata=_positive())
    lr: float = field(default=2e-3, metadata=_positive())
    weight_decay: float = field(default=0.05, metadata=_non_negative())
    crop_seconds: float = field(default=2.0, metadata=_positive())
    max_stems: int = field(default=4, metadata=_check(lambda v: v >= 1, ">= 1"))
    gain_db: float = field(default=6.0, metadata=_non_negative())
    eq_probability: float = field(default=0.5, metadata=_unit())
    val_fraction: float = field(default=0.1, metadata=_check(lambda v: 0 < v < 1, "in (0, 1)"))
    val_mixtures: int = field(default=512, metadata=_positive())
    eval_every: int = field(default=100, metadata=_positive())
    test_mixtures: int = field(default=500, metadata=_positive())


@dataclass(frozen=True)
class ClassifierParams:
    """The instrument classifier: constructor kwargs (``model``) and mix-training (``train``)."""

    model: dict[str, Any] = field(default_factory=dict)
    train: MixTrainParams = MixTrainParams()


@dataclass(frozen=True)
class RefineParams:
    """Relabelling of every training stem by the classifier."""

    threshold: float | str = field(
        default=0.5,
        metadata=_check(
            lambda v: v == "adaptive" or (isinstance(v, float) and 0 < v < 1),
            "a probability in (0, 1) or 'adaptive'",
        ),
    )
    aggregate: str = field(default="mean", metadata=_one_of("mean", "max"))
    hop_seconds: float = field(default=1.0, metadata=_positive())


@dataclass(frozen=True)
class SeparateParams:
    """Which labels the separators train on and how label sets become per-class pools."""

    labels: str = field(default="refined_2", metadata=_one_of(*LABEL_TABLES))
    pool: str = field(default="single", metadata=_one_of("single", "named"))


@dataclass(frozen=True)
class SeparatorTrainParams:
    """The shared separator training loop (random-mix examples, as Demucs trains)."""

    steps: int = field(default=300, metadata=_positive())
    batch_size: int = field(default=8, metadata=_positive())
    lr: float = field(default=3e-3, metadata=_positive())
    segment_seconds: float = field(default=3.0, metadata=_positive())
    gain_db: float = field(default=3.0, metadata=_non_negative())
    shift_seconds: float = field(default=0.5, metadata=_non_negative())
    checkpoint_every: int = field(default=50, metadata=_positive())
    val_fraction: float = field(default=0.1, metadata=_check(lambda v: 0 < v < 1, "in (0, 1)"))
    val_examples: int = field(default=32, metadata=_positive())
    grad_clip: float = field(default=5.0, metadata=_non_negative())


@dataclass(frozen=True)
class SeparatorParams:
    """One separator: constructor kwargs (``model``) and training (``train``)."""

    model: dict[str, Any] = field(default_factory=dict)
    train: SeparatorTrainParams = SeparatorTrainParams()


@dataclass(frozen=True)
class EvaluateParams:
    """Chunked separation of the clean test songs (chunks of each model's ``segment``) and scoring."""

    overlap: float = field(default=0.25, metadata=_check(lambda v: 0 <= v <= 0.9, "in [0, 0.9]"))
    museval: bool = True


@dataclass(frozen=True)
class Params:
    """The whole params.yaml."""

    seed: int = field(default=0, metadata=_non_negative())
    audio: AudioParams = AudioParams()
    data: DataParams = DataParams()
    generate: GenerateParams = GenerateParams()
    noise: NoiseParams = NoiseParams()
    classifier: ClassifierParams = ClassifierParams()
    refine: RefineParams = RefineParams()
    separate: SeparateParams = SeparateParams()
    demucs: SeparatorParams = SeparatorParams()
    xumx: SeparatorParams = SeparatorParams()
    evaluate: EvaluateParams = EvaluateParams()


def _type_ok(value: Any, hint: Any) -> tuple[bool, Any]:
    """Whether ``value`` fits the type ``hint``; ints are accepted (and converted) where floats are."""
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        for arm in typing.get_args(hint):
            ok, converted = _type_ok(value, arm)
            if ok:
                return True, converted
        return False, value
    if origin is dict:
        return isinstance(value, Mapping), dict(value) if isinstance(value, Mapping) else value
    if hint is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return True, float(value)
        return False, value
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool), value
    if hint is bool:
        return isinstance(value, bool), value
    if hint is str:
        return isinstance(value, str), value
    return isinstance(value, hint), value


def _type_name(hint: Any) -> str:
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        return " or ".join(_type_name(a) for a in typing.get_args(hint))
    return getattr(hint, "__name__", str(hint))


def unknown_key_error(where: str, key: str, valid: list[str]) -> ParamsError:
    """A one-line error for an unknown key, suggesting the closest valid one."""
    close = difflib.get_close_matches(key, valid, n=1, cutoff=0.5)
    hint = f"did you mean '{close[0]}'?" if close else "valid keys: " + ", ".join(valid)
    return ParamsError(f"{where}{key}: unknown key; {hint}")


def _build(cls: type, data: Any, where: str) -> Any:
    """Build dataclass ``cls`` from a mapping, validating keys, types and ranges."""
    if data is None:
        data = {}
    if not isinstance(data, Mapping):
        raise ParamsError(f"{where.rstrip('.') or 'params'}: expected a mapping of keys, got {data!r}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    kwargs: dict[str, Any] = {}
    for key, value in data.items():
        if key not in fields:
            raise unknown_key_error(where, str(key), list(fields))
        hint = hints[key]
        if dataclasses.is_dataclass(hint):
            kwargs[key] = _build(hint, value, f"{where}{key}.")
            continue
        ok, value = _type_ok(value, hint)
        if not ok:
            raise ParamsError(f"{where}{key}: expected {_type_name(hint)}, got {value!r}")
        meta = fields[key].metadata
        if "check" in meta and not meta["check"](value):
            raise ParamsError(f"{where}{key}: {value!r} is out of range; expected {meta['expected']}")
        kwargs[key] = value
    return cls(**kwargs)


def check_kwargs(where: str, kwargs: Mapping[str, Any], constructor: Callable[..., Any], filled: tuple[str, ...]) -> None:
    """Check a model block against its constructor's keyword arguments.

    Args:
        where: the block's dotted name, e.g. ``"demucs.model."``.
        kwargs: the block.
        constructor: the model class (its ``__init__`` signature is the reference).
        filled: arguments the stage fills from the data (they must not be in the block).
    """
    signature = inspect.signature(constructor)
    valid = [name for name in signature.parameters if name not in ("self", *filled)]
    for key in kwargs:
        if key in filled:
            raise ParamsError(f"{where}{key}: set by the pipeline from audio/data params; remove it here")
        if key not in valid:
            raise unknown_key_error(where, key, valid)


def _validate(params: Params) -> Params:
    """Checks that span several keys."""
    kinds = params.noise.kinds
    if kinds.swap + kinds.merge + kinds.silent <= 0:
        raise ParamsError("noise.kinds: all weights are 0; give swap, merge or silent a positive weight")
    if not params.data.truth and params.noise.rate > 0:
        raise ParamsError(
            "noise.rate: must be 0 when data.truth is false (the stems are already noisy and their truth unknown)"
        )
    if params.separate.labels in ("clean", "refined_by_clean") and not params.data.truth:
        raise ParamsError(
            f"separate.labels: '{params.separate.labels}' needs ground truth but data.truth is false; "
            "use noisy, refined_1 or refined_2"
        )
    train = params.classifier.train
    if train.max_stems > 4:
        raise ParamsError("classifier.train.max_stems: at most 4 (one stem per class)")
    return params


def parse_params(data: Any, source: str = "params.yaml") -> Params:
    """Validate a params mapping (as read from YAML) into :class:`Params`."""
    try:
        params = _build(Params, data, "")
    except ParamsError as err:
        raise ParamsError(f"{source}: {err}") from None
    from selfrefine import models  # the model registry imports torch: only when validating blocks

    try:
        models.check_blocks(params)
        return _validate(params)
    except ParamsError as err:
        raise ParamsError(f"{source}: {err}") from None


def load_params(path: str | Path = "params.yaml") -> Params:
    """Read and validate ``path``.

    Raises:
        ParamsError: missing file, bad YAML, unknown key, wrong type or out-of-range value.
    """
    path = Path(path)
    if not path.is_file():
        raise ParamsError(f"{path}: not found; run from the project root or pass --params")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        raise ParamsError(f"{path}: invalid YAML ({str(err).splitlines()[0]})") from None
    return parse_params(data, str(path))


def merge_into(base: MutableMapping[str, Any], override: Mapping[str, Any]) -> MutableMapping[str, Any]:
    """Deep-merge ``override`` into ``base`` in place (mappings merge, other values replace); returns ``base``.

    In place so that a ruamel round-trip document keeps its comments (``selfrefine profile``).
    """
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(base.get(key), MutableMapping):
            merge_into(base[key], value)
        else:
            base[key] = value
    return base
