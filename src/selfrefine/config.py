"""params.yaml: the one source of configuration, loaded into validated, typed config objects.

DVC does not validate ``dvc exp run -S key=value`` (a typo silently adds a key), so every stage loads
the file through :func:`load_params`, which rejects unknown keys (naming the closest valid one), wrong
types and out-of-range values with a one-line :class:`ParamsError`.

This module imports no torch (data stages load it in milliseconds). Model blocks (``classifier.model``
and each separator's ``model``) map 1:1 onto their constructor's keyword arguments; the stage that
builds a model checks its block against the constructor before it loads any data
(:func:`selfrefine.models.registry.check_block`), and checks there that the separator is registered,
so adding a separator to the registry invalidates no stage but its own. The separators' blocks are
``separators.<name>``; the refinement rounds are ``refine.rounds``.
"""

from __future__ import annotations

import dataclasses
import difflib
import re
import types
import typing
from collections.abc import Callable, Mapping, MutableMapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from selfrefine.errors import UserError
from selfrefine.paths import filtered_table, refined_table

ROOT_TABLES = ("noisy", "clean")
"""Label tables the index writes: file names, and the truth (empty when it is unknown)."""

SELECTED = "selected"
"""The selection control's label table (stage ``select``): the clean labels of only the stems that the pools of
``separate.control`` (a refined table) keep; every other stem gets no label and so joins no pool."""


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
    """The training stems, in ``layout`` (:mod:`selfrefine.data.layouts`)."""
    layout: str = field(default="musdb", metadata=_one_of("musdb", "songs", "csv"))
    test_root: str = field(default="data/generated/test", metadata=_check(bool, "a folder of test song folders"))
    """The clean test songs: folders of four stems (MUSDB18-HQ's ``test/``)."""
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
    """Length of every training song."""
    test_seconds: float = field(default=16.0, metadata=_check(lambda v: v >= 1, ">= 1"))
    """Length of every clean test song."""
    seed: int = field(default=0, metadata=_non_negative())
    """The songs' own seed: a replicate of the pipeline (``seed``) keeps the same songs, so that every run scores
    the same test songs (songs crossed with runs)."""
    engine: str = field(default="synth", metadata=_one_of("synth", "sampled"))
    """How the songs are made: ``synth`` synthesises every instrument; ``sampled`` plays the same kind of plans
    from a General MIDI soundfont (recorded instruments; :mod:`selfrefine.data.worlds`)."""
    soundfont: str = "/usr/share/sounds/sf3/MuseScore_General_Lite.sf3"
    """The sampled engine's General MIDI soundfont (.sf2 / .sf3): MuseScore General, which ``setup.sh`` installs
    from Debian (``musescore-general-soundfont-small``)."""


@dataclass(frozen=True)
class NoiseKinds:
    """Relative weights of the corruption kinds (normalised; at least one > 0)."""

    swap: float = field(default=0.5, metadata=_non_negative())
    merge: float = field(default=0.5, metadata=_non_negative())
    silent: float = field(default=0.0, metadata=_non_negative())
    foreign: float = field(default=0.0, metadata=_non_negative())
    """The file named s holds another class's audio taken from another song (truth: that class)."""


@dataclass(frozen=True)
class NoiseParams:
    """Label-noise injection, modelled on the SDX'23 label-noise track."""

    rate: float = field(default=0.3, metadata=_unit())
    kinds: NoiseKinds = NoiseKinds()


@dataclass(frozen=True)
class TrainParams:
    """The keys every training block has: the loop's steps, batch size and learning rate, the random gain of the
    stems, the share of songs held out for validation and the precision (what the run computes; how it runs,
    such as its data-loader processes, is ``launch``).

    A block gives its own defaults for the first four as class keywords, e.g.
    ``class MixTrainParams(TrainParams, steps=500, batch_size=32, lr=2e-3, gain_db=6.0)``.
    """

    steps: int = field(metadata=_positive())
    batch_size: int = field(metadata=_positive())
    lr: float = field(metadata=_positive())
    gain_db: float = field(metadata=_non_negative())
    val_fraction: float = field(default=0.1, metadata=_check(lambda v: 0 < v < 1, "in (0, 1)"))
    precision: str = field(default="fp32", metadata=_one_of("fp32", "bf16"))
    """``bf16``: forward pass and loss under bfloat16 autocast (for GPUs; fp32 is the CPU default)."""

    def __init_subclass__(cls, **defaults: Any) -> None:
        """Declare the shared keys named in ``defaults`` again in ``cls``, with these defaults (and the same checks)."""
        super().__init_subclass__()
        annotations = dict(cls.__dict__.get("__annotations__", {}))
        for name, value in defaults.items():
            shared = TrainParams.__dataclass_fields__[name]
            annotations[name] = shared.type
            setattr(cls, name, field(default=value, metadata=shared.metadata))
        cls.__annotations__ = annotations


@dataclass(frozen=True)
class MixTrainParams(TrainParams, steps=500, batch_size=32, lr=2e-3, gain_db=6.0):
    """Mix-training of the instrument classifier on random mixtures of stems."""

    weight_decay: float = field(default=0.05, metadata=_non_negative())
    crop_seconds: float = field(default=2.0, metadata=_positive())
    max_stems: int = field(default=4, metadata=_check(lambda v: v >= 1, ">= 1"))
    eq_probability: float = field(default=0.5, metadata=_unit())
    effects: float = field(default=0.0, metadata=_unit())
    """Probability of each random per-stem effect (EQ, distortion, reverb, speed: :mod:`selfrefine.data.effects`)
    on each stem of a training mixture; 0: none (validation and test mixtures never get effects)."""
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
    folds: int = field(default=1, metadata=_check(lambda v: isinstance(v, int) and 1 <= v <= 20, "an integer 1..20"))
    """Out-of-fold refinement: the songs are split into ``folds`` folds, one classifier is mix-trained per
    fold on the other folds' songs and relabels only its own fold's. 1: one classifier relabels the stems
    it was trained on (the paper). Every round uses it; the classify stage trains ``folds`` classifiers."""
    later_rounds: str = field(default="relabel", metadata=_one_of("relabel", "average", "confirm"))
    """What a round trained on an earlier round's table (``refined_<r>``) does with its probabilities: ``relabel``
    thresholds them alone (the paper); ``average`` thresholds their mean with that table's probabilities (which
    it writes, so a third round averages with the mean of the first two); ``confirm`` keeps the table's label
    sets but for a class whose probability reaches ``confirm`` (added) or falls to ``1 - confirm`` (dropped).
    Rounds trained on ``noisy`` or ``clean`` always relabel."""
    confirm: float = field(default=0.9, metadata=_check(lambda v: 0.5 < v < 1, "a probability in (0.5, 1)"))
    """``later_rounds: confirm``: the probability a change of a label set needs."""
    rounds: dict[str, str] = field(default_factory=lambda: {"1": "noisy", "2": "refined_1", "clean": "clean"})
    """Round -> the label table its classifier is mix-trained on (``noisy``, ``clean`` or an earlier
    round's ``refined_<round>``); round ``r`` writes ``refined_<r>``. Drives the ``classify@r`` and
    ``refine@r`` stages (a DVC ``foreach``)."""

    def chain(self, round_key: str) -> list[str]:
        """The rounds that lead to ``round_key``, first to last (each trains on the previous one's labels)."""
        rounds = [round_key]
        while self.rounds[rounds[0]] not in ROOT_TABLES:
            rounds.insert(0, self.rounds[rounds[0]].removeprefix("refined_"))
        return rounds

    def root(self, table: str) -> str:
        """The index table (``noisy`` or ``clean``) that label table ``table`` is refined from."""
        if table == SELECTED:
            return "clean"
        return table if table in ROOT_TABLES else self.rounds[self.chain(table.removeprefix("refined_"))[0]]


@dataclass(frozen=True)
class SeparateParams:
    """Which labels the separators train on and how label sets become per-class pools."""

    labels: str = "refined_2"
    """``noisy``, ``clean`` or ``refined_<round>`` of a round in ``refine.rounds``."""
    pool: str = field(default="single", metadata=_one_of("single", "named", "partial"))
    """How label sets become per-class pools (:func:`selfrefine.data.labels.build_pools`): ``single`` (a stem
    labelled with one class), ``named`` (its file name's class among its labels) or ``partial`` (every class it
    holds; a stem with several supervises the sum of their estimates)."""
    keep: float = field(default=1.0, metadata=_check(lambda v: 0 < v <= 1, "in (0, 1]"))
    """Ranked pools: the share of each class's pool kept, the stems the refining classifier is likeliest to have
    labelled right first (needs a refined table); 1.0: every stem."""
    seed: int | None = field(default=None, metadata=_check(lambda v: v is None or v >= 0, ">= 0 or null"))
    """The separators' training seed (initial weights, examples drawn); ``None``: the pipeline's ``seed``.
    A replicate of a separator run changes this alone, so nothing upstream reruns."""
    models: list[str] = field(default_factory=lambda: ["demucs", "xumx"])
    """Separators to train and evaluate (``train@<name>``, ``evaluate@<name>``); each has a ``separators`` block."""
    control: str = "refined_2"
    """The refined table whose pool membership the selection control ``selected`` copies (stage ``select``)."""


@dataclass(frozen=True)
class SeparatorTrainParams(TrainParams, steps=300, batch_size=8, lr=3e-3, gain_db=3.0):
    """The shared separator training loop (random-mix examples, as Demucs trains)."""

    loss: str = "l1"
    """A key of the separator module's ``LOSSES`` (checked by the training stage)."""
    truncate_quantile: float | None = field(
        default=None, metadata=_check(lambda v: v is None or 0 < v < 1, "in (0, 1) or null")
    )
    """Noise-robust loss truncation: each step, per source, the ``floor((1 - q) B)`` examples of the global batch
    whose loss ranks highest relative to their target's level leave the gradient (loss masking as in the SDX'23
    label-noise entries; ``selfrefine.training.separation.truncated_mean``); ``None``:
    the plain mean."""
    truncate_after: float = field(default=0.0, metadata=_check(lambda v: 0 <= v < 1, "in [0, 1)"))
    """Share of the steps trained on the plain mean before truncation starts (a warm-up schedule)."""
    segment_seconds: float = field(default=3.0, metadata=_positive())
    shift_seconds: float = field(default=0.5, metadata=_non_negative())
    checkpoint_every: int = field(default=50, metadata=_positive())
    val_examples: int = field(default=32, metadata=_positive())
    grad_clip: float = field(default=5.0, metadata=_non_negative())


@dataclass(frozen=True)
class SeparatorParams:
    """One separator: constructor kwargs (``model``) and training (``train``)."""

    model: dict[str, Any] = field(default_factory=dict)
    train: SeparatorTrainParams = SeparatorTrainParams()


@dataclass(frozen=True)
class FilterParams:
    """Model-based filtering (stage ``filter@<name>``, table ``filtered_<name>``): separator ``<name>`` trains on
    ``labels`` (its own ``separators`` block, ``separate``'s pools and seed), separates every training stem on its
    own, and a stem whose estimate for its labelled classes is below ``threshold_db`` SDR leaves every pool."""

    models: list[str] = field(default_factory=list)
    """Separators that filter, each writing ``filtered_<name>``; ``[]``: no filtering (no stage)."""
    labels: str = "refined_2"
    """The table filtered (and the scoring separator's training labels)."""
    threshold_db: float = 0.0
    """A stem stays when the SDR of its labelled classes' summed estimate against the stem reaches this."""


@dataclass(frozen=True)
class EvaluateParams:
    """Chunked separation of the clean test songs (chunks of each model's ``segment``) and scoring."""

    overlap: float = field(default=0.25, metadata=_check(lambda v: 0 <= v <= 0.9, "in [0, 0.9]"))
    bsseval: bool = True
    """BSSEval v4 SDR (museval's numbers, batched in torch) besides the global SDR."""
    museval_check: bool = False
    """Also run museval itself and record the largest difference (slow: a cross-check)."""


@dataclass(frozen=True)
class CompareParams:
    """``selfrefine compare``: which label tables, how many training runs each, how the intervals are drawn."""

    labels: list[str] = field(default_factory=lambda: ["noisy", "refined_2", "selected", "clean"])
    seeds: int = field(default=5, metadata=_positive())
    """Runs per label table (seeds 0 .. seeds - 1): the unit of replication, crossed with the test songs."""
    vary: str = field(default="pipeline", metadata=_one_of("pipeline", "separators"))
    """What a run's seed changes: ``pipeline`` sets ``seed`` (the noise draw, the classifiers, the separators; the
    songs keep ``generate.seed``); ``separators`` sets ``separate.seed`` alone (nothing upstream reruns)."""
    separator_runs: int = field(default=2, metadata=_positive())
    """With ``vary: pipeline``, separator trainings per pipeline replicate of the judged table
    (``separate.labels``): the first is the replicate's own run; each further one sets ``separate.seed`` to
    ``seed + 1000 j``. With 2 or more, the run-to-run spread of that table splits into the refinement's (noise
    draw and classifiers) and the separators' (a nested design); 1 runs no extra training."""
    primary: list[str] = field(default_factory=lambda: ["refined_2 - noisy", "refined_2 - clean"])
    """The contrasts declared before a run, per separator (``A - B`` of label tables): each gets its own 95 %
    interval; every other difference is exploratory and carries a Holm-adjusted p-value."""
    jobs: int = field(default=1, metadata=_positive())
    """DVC queue workers (``dvc queue start -j``): experiments run at once, each with its own memory and GPU use."""
    aliases: dict[str, str] = field(
        default_factory=dict,
        metadata=_check(
            lambda v: all(re.fullmatch(r"[a-z][a-z0-9_+-]{0,19}", k) and "@" in c for k, c in v.items()),
            "short names (lowercase letters, digits, _ + -; at most 20 characters) of conditions TABLE@key=value",
        ),
    )
    """Short names of long conditions (``merge-only: noisy@noise.kinds.swap=0@noise.kinds.merge=1``): tables and
    plots show the alias, ``--labels`` takes it; the kept scores keep the full condition."""


STUDIES = ("noise-rate", "threshold", "iterations")
"""The studies of ``selfrefine study NAME``."""


@dataclass(frozen=True)
class StudyParams:
    """``selfrefine study NAME``: each study's grid, and the separator runs behind each point's SDR."""

    seeds: int = field(default=2, metadata=_positive())
    """Training runs (``separate.seed`` 0 .. seeds - 1) per label table and point: the intervals' unit."""
    models: list[str] = field(default_factory=lambda: ["demucs"])
    """Separators trained at each point (``separate.models``)."""
    noise_rates: list[float] = field(default_factory=lambda: [0.1, 0.3, 0.5, 0.7])
    """noise-rate: ``noise.rate`` values, each with ``noise.kinds`` as set."""
    noise_kinds: list[str] = field(default_factory=lambda: ["swap", "merge", "silent", "foreign"])
    """noise-rate: each kind alone at ``noise.rate``."""
    thresholds: list[float | str] = field(default_factory=lambda: [0.3, 0.5, 0.7, 0.9, "adaptive"])
    """threshold: ``refine.threshold`` values (the separators train on the last round's labels)."""
    rounds: int = field(default=5, metadata=_check(lambda v: 1 <= v <= 20, "in 1..20"))
    """iterations: rounds 1 .. rounds, each chained on the one before."""
    stop_changed: float = field(default=0.02, metadata=_unit())
    """iterations' stopping rule (noisy data only): stop at the first round from 2 on that changes the label set
    of fewer than this share of the stems."""
    vary: str = field(default="separators", metadata=_one_of("pipeline", "separators"))
    """As ``compare.vary``: what a run's seed changes."""
    jobs: int = field(default=1, metadata=_positive())


@dataclass(frozen=True)
class LaunchParams:
    """How the training stages (``classify``, ``train``) start; dvc.yaml puts it on their command line."""

    nproc: int = field(default=1, metadata=_positive())
    """Training processes on this machine: 1 is plain python; N > 1 is torchrun with N ranks (DDP; one per GPU,
    gloo on CPUs). The batch sizes in params are global: each rank trains on its share."""
    num_workers: int = field(default=0, metadata=_non_negative())
    """Data-loader processes per training process that render the batches (0: the training process itself). The
    batches do not depend on it, so no stage declares it: changing it reruns nothing."""


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
    filter: FilterParams = FilterParams()
    evaluate: EvaluateParams = EvaluateParams()
    compare: CompareParams = CompareParams()
    study: StudyParams = StudyParams()
    launch: LaunchParams = LaunchParams()
    separators: dict[str, SeparatorParams] = field(default_factory=dict)
    """One block per separator (a module of :mod:`selfrefine.models.separators`)."""

    def label_tables(self) -> list[str]:
        """Every label table the pipeline writes: the index's two, one per refinement round, the selection control
        and one per filtering separator."""
        filtered = (filtered_table(m) for m in self.filter.models)
        return [*ROOT_TABLES, *(refined_table(r) for r in self.refine.rounds), SELECTED, *filtered]


def _type_ok(value: Any, hint: Any) -> tuple[bool, Any]:
    """Whether ``value`` fits the type ``hint``; ints are accepted (and converted) where floats are."""
    if hint is Any:
        return True, value
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        for arm in typing.get_args(hint):
            ok, converted = _type_ok(value, arm)
            if ok:
                return True, converted
        return False, value
    if origin is dict:
        if not isinstance(value, Mapping):
            return False, value
        value_hint = typing.get_args(hint)[1]  # keys are checked where they are used (refine.rounds)
        return all(_type_ok(v, value_hint)[0] for v in value.values()), dict(value)
    if origin is list:
        if not isinstance(value, list):
            return False, value
        (item_hint,) = typing.get_args(hint)
        return all(_type_ok(v, item_hint)[0] for v in value), list(value)
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
    if typing.get_origin(hint) in (dict, list):
        return str(hint).replace("typing.", "")
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
        if typing.get_origin(hint) is dict and dataclasses.is_dataclass(typing.get_args(hint)[1]):
            if not isinstance(value, Mapping):
                raise ParamsError(f"{where}{key}: expected a mapping of names to blocks, got {value!r}")
            kwargs[key] = {str(k): _build(typing.get_args(hint)[1], v, f"{where}{key}.{k}.") for k, v in value.items()}
            continue
        ok, value = _type_ok(value, hint)
        if not ok:
            raise ParamsError(f"{where}{key}: expected {_type_name(hint)}, got {value!r}")
        meta = fields[key].metadata
        if "check" in meta and not meta["check"](value):
            raise ParamsError(f"{where}{key}: {value!r} is out of range; expected {meta['expected']}")
        kwargs[key] = value
    return cls(**kwargs)


def _validate(params: Params) -> Params:
    """Checks that span several keys."""
    kinds = params.noise.kinds
    if sum(getattr(kinds, f.name) for f in dataclasses.fields(kinds)) <= 0:
        names = ", ".join(f.name for f in dataclasses.fields(kinds))
        raise ParamsError(f"noise.kinds: all weights are 0; give one of {names} a positive weight")
    if not params.data.truth and params.noise.rate > 0:
        raise ParamsError(
            "noise.rate: must be 0 when data.truth is false (the stems are already noisy and their truth unknown)"
        )
    train = params.classifier.train
    if train.max_stems > 4:
        raise ParamsError("classifier.train.max_stems: at most 4 (one stem per class)")
    if params.evaluate.museval_check and not params.evaluate.bsseval:
        raise ParamsError(
            "evaluate.museval_check: checks the BSSEval v4 SDR against museval; set evaluate.bsseval: true"
        )
    _validate_rounds(params.refine)
    if params.separate.labels not in params.label_tables():
        raise ParamsError(
            f"separate.labels: '{params.separate.labels}' is not a label table of this pipeline; "
            f"use one of {', '.join(params.label_tables())}"
        )
    _validate_filter(params)
    trained = params.separate.labels
    if trained in map(filtered_table, params.filter.models):
        trained = params.filter.labels
    if not params.data.truth and params.refine.root(trained) == "clean":
        raise ParamsError(
            f"separate.labels: '{params.separate.labels}' needs ground truth but data.truth is false; "
            "use noisy or a round refined from it"
        )
    unknown = [t for t in params.compare.labels if t not in params.label_tables()]
    if unknown:
        raise ParamsError(
            f"compare.labels: '{unknown[0]}' is not a label table of this pipeline; "
            f"use any of {', '.join(params.label_tables())}"
        )
    if "noisy" not in params.compare.labels:
        raise ParamsError("compare.labels: needs noisy (every other table is set against it)")
    if not params.separate.control.startswith("refined_") or params.separate.control not in params.label_tables():
        refined = [t for t in params.label_tables() if t.startswith("refined_")]
        raise ParamsError(
            f"separate.control: '{params.separate.control}' is not a refined table; use one of {', '.join(refined)}"
        )
    for contrast in params.compare.primary:
        sides = [side.strip() for side in contrast.split(" - ")]
        if len(sides) != 2 or any(side not in params.label_tables() for side in sides):
            raise ParamsError(
                f"compare.primary: '{contrast}' is not 'A - B' of two label tables ({', '.join(params.label_tables())})"
            )
    for name in params.separate.models:
        if name not in params.separators:
            raise ParamsError(f"separate.models: '{name}' has no block; add separators.{name} (model and train)")
    if len(set(params.separate.models)) != len(params.separate.models):
        raise ParamsError("separate.models: a separator is listed twice")
    _validate_study(params)
    return params


def _validate_filter(params: Params) -> None:
    """Filtering separators have blocks and filter a table the pipeline writes before them."""
    for name in params.filter.models:
        if name not in params.separators:
            raise ParamsError(f"filter.models: '{name}' has no block; add separators.{name} (model and train)")
    before = [*ROOT_TABLES, *(refined_table(r) for r in params.refine.rounds), SELECTED]
    if params.filter.models and params.filter.labels not in before:
        raise ParamsError(
            f"filter.labels: '{params.filter.labels}' is not a table to filter; use one of {', '.join(before)}"
        )


def _validate_study(params: Params) -> None:
    """The studies' grids hold values their params accept."""
    study = params.study
    for name in study.models:
        if name not in params.separators:
            raise ParamsError(f"study.models: '{name}' has no block; use any of {', '.join(params.separators)}")
    for rate in study.noise_rates:
        if not 0 <= rate <= 1:
            raise ParamsError(f"study.noise_rates: {rate} is not a rate in [0, 1]")
    kinds = [f.name for f in dataclasses.fields(NoiseKinds)]
    for kind in study.noise_kinds:
        if kind not in kinds:
            raise ParamsError(f"study.noise_kinds: unknown kind '{kind}'; use any of {', '.join(kinds)}")
    check = next(f for f in dataclasses.fields(RefineParams) if f.name == "threshold").metadata
    for value in study.thresholds:
        if not check["check"](float(value) if isinstance(value, int) else value):
            raise ParamsError(f"study.thresholds: {value!r} is not {check['expected']}")


def _validate_rounds(refine: RefineParams) -> None:
    """Round keys are names; each round trains on ``noisy``, ``clean`` or an earlier round's labels."""
    if not refine.rounds:
        raise ParamsError("refine.rounds: no round; give at least one, e.g. {1: noisy}")
    seen: list[str] = []
    for key, table in refine.rounds.items():
        if not isinstance(key, str):
            raise ParamsError(
                f'refine.rounds: round {key!r} must be quoted ("{key}"); DVC skips number keys in foreach'
            )
        if not key.replace("_", "").isalnum():
            raise ParamsError(f"refine.rounds: round '{key}' is not a name (letters, digits, _)")
        earlier = [refined_table(r) for r in seen]
        if table not in (*ROOT_TABLES, *earlier):
            raise ParamsError(
                f"refine.rounds.{key}: '{table}' is not a label table before this round; "
                f"use one of {', '.join((*ROOT_TABLES, *earlier))}"
            )
        seen.append(key)


def parse_params(data: Any, source: str = "params.yaml") -> Params:
    """Validate a params mapping (as read from YAML) into :class:`Params`."""
    try:
        return _validate(_build(Params, data, ""))
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
