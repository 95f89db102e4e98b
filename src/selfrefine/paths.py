"""Where the project keeps things: the one place that spells out a path, in Python.

Stage bodies, the faces (the ``selfrefine`` command, ``compare``, the studies, ``audit``, ``separate``) and the
tests take their paths from here, so a path is written once in Python (and once, as a dependency or output, in
``dvc.yaml``).
"""

from __future__ import annotations

import os
from pathlib import Path

from selfrefine.errors import UserError

GENERATED = Path("data/generated")
"""The embedded default dataset (``generate``)."""
INDEX = Path("data/index.csv")
"""Every validated stem of the user's data, where it is (``index``)."""
NOISY = Path("data/noisy")
"""Training stems with label noise injected (``corrupt``)."""
TRUTH = NOISY / "truth.csv"
"""Each noisy stem's corruption and true label set (``corrupt``)."""
CHECKPOINTS = Path("checkpoints")
"""Resumable training state; not a DVC output (DVC would delete it before the rerun that resumes it)."""
PARAMS = Path("params.yaml")
DVC_YAML = Path("dvc.yaml")
"""The pipeline: its stages, their deps and outs, and the plots DVC draws."""
"""Every parameter of the pipeline and its faces (validated on load)."""
PROFILES = Path("profiles")
"""Named params overrides (``selfrefine profile NAME`` applies ``profiles/NAME.yaml``)."""

RESOLVED_PARAMS = Path("metrics/params.json")
"""params.yaml as the stages read it, every default filled in (``validate``)."""
SUMMARY = Path("metrics.json")
"""The method's key numbers in one flat file (``summarize``): the pipeline's one DVC metric."""

README = Path("README.md")
"""Holds the generated results headline (``selfrefine compare --tabulate``)."""
DOCS = Path("docs")
RESULTS_DOC = DOCS / "results.md"
"""The comparison's generated results section, and what the runs show."""
STUDIES_DOC = DOCS / "studies.md"
"""The studies' generated sections."""
COMPARE = Path("metrics/compare")
"""Kept per-song scores of every compared experiment (``<model>.csv``), label quality and batch records."""
COMPARE_JSON = Path("metrics/compare.json")
COMPARE_MD = Path("metrics/compare.md")
COMPARE_PLOT = Path("plots/compare.png")
COMPARE_CSV = Path("plots/compare.csv")
"""Per separator and condition, the mean global SDR and its interval: the DVC plot of the comparison."""
STUDIES = Path("metrics/studies")
"""A study's kept scores and label metrics (``<study>/``) and its results (``<study>.json``)."""
AUDIT_REPORT = Path("reports/audit")
"""``selfrefine audit``'s default report folder."""
SEPARATED = Path("separated")
"""``selfrefine separate``'s default output folder."""


def stem_cache() -> Path:
    """Per-stem metadata and resampled audio (:class:`selfrefine.data.stems.StemStore`), keyed by file content.

    ``$SELFREFINE_CACHE`` if set, else ``$XDG_CACHE_HOME/selfrefine/stems`` (``~/.cache/selfrefine/stems``).
    Outside the repository and DVC: it is a cache, safe to delete, shared by experiments and checkouts.
    """
    if os.environ.get("SELFREFINE_CACHE"):
        return Path(os.environ["SELFREFINE_CACHE"])
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "selfrefine" / "stems"


def label_table(name: str) -> Path:
    """Label table ``name``: ``noisy``, ``clean``, ``refined_<round>``, ``selected`` or ``filtered_<separator>``."""
    return Path("data/labels") / f"{name}.csv"


def refined_table(round_key: str) -> str:
    """The name of the label table that refinement round ``round_key`` writes."""
    return f"refined_{round_key}"


def filtered_table(separator: str) -> str:
    """The name of the label table that separator ``separator``'s filtering (stage ``filter@<separator>``) writes."""
    return f"filtered_{separator}"


def classifier_dir(round_key: str) -> Path:
    """The mix-trained classifier of a round: ``model.pt`` and ``validation.npz``."""
    return Path("models/classifier") / round_key


def separator_model(name: str) -> Path:
    """A trained separator's checkpoint."""
    return Path("models") / name / "model.pt"


def curves(run: str) -> Path:
    """dvclive folder of a training run (``classify_<round>`` or ``train_<separator>``)."""
    return Path("dvclive") / run


def study_json(study: str) -> Path:
    """A study's results: per point, label quality and SDR with intervals."""
    return STUDIES / f"{study}.json"


def study_plot(study: str) -> Path:
    """A study's figure."""
    return Path("plots/studies") / f"{study}.png"


def training_plot(run: str) -> Path:
    """The training-curve figure of a run."""
    return Path("plots/train") / run / "curves.png"


def timing(stage: str) -> Path:
    """Wall-time record of a stage: kept apart from models and metrics, so those stay reproducible."""
    return Path("timings") / f"{stage}.json"


def metrics(kind: str, name: str) -> Path:
    """``metrics/<kind>/<name>.json``, e.g. ``metrics("refine", "2")``."""
    return Path("metrics") / kind / f"{name}.json"


def filter_plots(separator: str) -> Path:
    """Score histograms of separator ``separator``'s filtering (stage ``filter@<separator>``)."""
    return Path("plots/filter") / separator


def refine_plots(round_key: str) -> Path:
    """Threshold sweeps, confusion and probability plots of a refinement round."""
    return Path("plots/refine") / round_key


def separation_plots(name: str) -> Path:
    """Per-source and per-song scores of a separator on the clean test songs."""
    return Path("plots/separation") / name


def estimates(name: str) -> Path:
    """A separator's estimates of the clean test songs."""
    return Path("data/estimates") / name


def producer(path: str | Path) -> str | None:
    """The stage (as ``dvc repro`` names it) that writes ``path``, or None for an input of the pipeline."""
    p = Path(path)
    if p == INDEX:
        return "index"
    if p == NOISY or NOISY in p.parents:
        return "corrupt"
    if p.parent == Path("data/labels"):
        if p.stem == "selected":
            return "select"
        if p.stem.startswith("filtered_"):
            return f"filter@{p.stem.removeprefix('filtered_')}"
        return "corrupt" if p.stem in ("noisy", "clean") else f"refine@{p.stem.removeprefix('refined_')}"
    if Path("models/classifier") in p.parents:
        return f"classify@{p.relative_to('models/classifier').parts[0]}"
    if len(p.parts) >= 2 and p.parts[0] == "models":
        return f"train@{p.parts[1]}"
    return None


def require(*required: str | Path) -> None:
    """Stop with one line naming the stage to run first when an input a stage reads is missing.

    Raises:
        UserError: e.g. ``data/index.csv: missing; run the index stage first (dvc repro index)``.
    """
    for path in map(Path, required):
        if not path.exists():
            stage = producer(path)
            fix = f"run the {stage} stage first (dvc repro {stage})" if stage else "create it or fix the path"
            raise UserError(f"{path}: missing; {fix}")
