"""Model-based filtering: a separator trained on a label table scores every training stem, and the stems it
cannot explain leave the pools (as CCOM's first-placed SDX'23 label-noise entry filtered its data).

Each labelled stem is separated *on its own* (a mixture of one stem). Its score is the SDR of the summed
estimates of its labelled classes against the stem: high when the separator puts the stem in those classes,
near 0 dB or below when it hears another instrument (a file holding the wrong class), in between when the stem
holds its classes and more. Stems scoring below ``filter.threshold_db`` get no label, so they join no pool.
Nothing here reads the truth; :func:`filter_scores` scores the decision against it where it is known.
"""

from __future__ import annotations

import logging

import numpy as np
import torch
from torch import nn

from selfrefine import CLASSES
from selfrefine.data.labels import LabelledStem
from selfrefine.data.stems import StemStore
from selfrefine.errors import UserError
from selfrefine.evaluation.metrics import global_sdr
from selfrefine.evaluation.separation import separate

log = logging.getLogger(__name__)


@torch.no_grad()
def stem_scores(model: nn.Module, store: StemStore, stems: list[LabelledStem], overlap: float) -> np.ndarray:
    """``(stems,)`` SDR (dB) of each stem's labelled classes' summed estimate, the stem separated alone; NaN for a
    stem with no label or no audio above the silence level."""
    model.eval()
    scores = np.full(len(stems), np.nan)
    for i, stem in enumerate(stems):
        if i and i % max(1, len(stems) // 10) == 0:
            log.info("filter: scored %d/%d stems", i, len(stems))
        if not stem.labels or store.is_silent(i):
            continue
        audio = store.read(i)
        estimate = separate(model, audio, overlap)[[CLASSES.index(c) for c in CLASSES if c in stem.labels]].sum(0)
        scores[i] = float(global_sdr(audio[None], estimate[None])[0])
    return scores


def filtered(stems: list[LabelledStem], scores: np.ndarray, threshold_db: float) -> list[LabelledStem]:
    """The table with no label on the stems whose score is below ``threshold_db`` (unscored stems as they were)."""
    return [
        LabelledStem(s.song, s.stem, s.path, frozenset()) if score < threshold_db else s
        for s, score in zip(stems, scores, strict=True)
    ]


def check_pools(
    before: dict[str, list[int]], after: dict[str, list[int]], scores: np.ndarray, threshold_db: float, where: str
) -> None:
    """Refuse a filter that empties a class's pool (``before`` and ``after``: :func:`build_pools` of the table and
    of its filtered version): the separators could not train. The threshold is in absolute dB, and a scorer whose
    estimate of a class is weak scores every stem of that class low."""
    for c, pool in before.items():
        if pool and not after.get(c):
            best = float(np.nanmax(scores[pool]))  # unscored stems keep their labels: every one here was scored
            most = np.floor(best * 100) / 100
            raise UserError(
                f"{where}: no {c} stem scores filter.threshold_db={threshold_db:g} dB or more (its {len(pool)} "
                f"stems' best: {best:.2f} dB), so the {c} pool would be empty; set filter.threshold_db to at most "
                f"{most:.2f} or train the scorer longer"
            )


def filter_scores(before: list[LabelledStem], after: list[LabelledStem], truth: list[frozenset[str]]) -> dict:
    """How the filter's removals meet the truth: of the stems it left out, how many had a wrong label set; of
    the wrongly labelled stems, how many it left out; label accuracy of the labelled stems before and after."""
    removed = [i for i, (b, a) in enumerate(zip(before, after, strict=True)) if b.labels and not a.labels]
    wrong = [i for i, s in enumerate(before) if s.labels and s.labels != truth[i]]
    labelled = [i for i, s in enumerate(after) if s.labels]
    return {
        "removed": len(removed),
        "removed_wrong": sum(before[i].labels != truth[i] for i in removed),
        "wrong_before": len(wrong),
        "wrong_removed": len(set(wrong) & set(removed)),
        "label_accuracy_before": float(
            np.mean([before[i].labels == truth[i] for i in range(len(before)) if before[i].labels])
        ),
        "label_accuracy_after": float(np.mean([after[i].labels == truth[i] for i in labelled])) if labelled else 0.0,
    }
