"""Stage ``summarize``: the method's key numbers, from every stage's report, in one flat metrics file.

``metrics.json`` is the pipeline's one DVC metric, so ``dvc exp show``, ``dvc metrics show`` and ``dvc metrics
diff`` lead with what the method is judged by (the stages' full reports under ``metrics/`` are DVC outputs):

- ``labels.<round>``: share of the training stems whose refined label set equals the truth (only when the truth
  is known: the embedded default, or a clean dataset with injected noise);
- ``exact.<round>``: the round's classifier's exact match on clean test mixtures;
- ``sdr.<separator>``: SDX'23 global SDR on the clean test songs (mean over songs and sources, dB);
- ``bss.<separator>``: BSSEval v4 SDR (per source the median over songs, then the mean over sources, dB).

A round or separator whose stage was skipped (no ground truth) has no entry.
"""

from __future__ import annotations

import json
import logging

from selfrefine import paths
from selfrefine.config import Params
from selfrefine.outputs import write_json
from selfrefine.stages.entry import main

log = logging.getLogger("selfrefine.stages.summarize")  # not __name__: run as __main__


def summary(params: Params) -> dict[str, dict[str, float]]:
    """The key numbers of the stages' reports under ``metrics/`` (see the module docstring), rounded to 4 places."""
    reports = [paths.metrics(kind, r) for r in params.refine.rounds for kind in ("classifier", "refine")]
    reports += [paths.metrics("separation", m) for m in params.separate.models]
    paths.require(*reports)
    out: dict[str, dict[str, float]] = {"labels": {}, "exact": {}, "sdr": {}, "bss": {}}
    for r in params.refine.rounds:
        refine = json.loads(paths.metrics("refine", r).read_text())
        classifier = json.loads(paths.metrics("classifier", r).read_text())
        if "label_accuracy_refined" in refine:
            out["labels"][r] = refine["label_accuracy_refined"]
        if "test_clean_mixtures" in classifier:
            out["exact"][r] = classifier["test_clean_mixtures"]["exact_match"]
    for m in params.separate.models:
        separation = json.loads(paths.metrics("separation", m).read_text())
        out["sdr"][m] = separation["global_sdr"]["mean"]["mean_over_sources"]
        if separation.get("sdr"):
            out["bss"][m] = separation["sdr"]["median"]["mean_over_sources"]
    return {kind: {k: round(v, 4) for k, v in values.items()} for kind, values in out.items() if values}


def run(params: Params) -> None:
    """Write ``metrics.json`` from the stages' reports."""
    numbers = summary(params)
    write_json(paths.SUMMARY, numbers)
    log.info("summarize: %s", ", ".join(f"{k}.{n} {v}" for k, vs in numbers.items() for n, v in vs.items()))


if __name__ == "__main__":
    main(run)
