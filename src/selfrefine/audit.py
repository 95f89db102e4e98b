"""``selfrefine audit``: which stems of a library are probably mislabelled, as a CSV and an offline HTML report.

A trained classifier (by default the last refinement round's, ``models/classifier/<round>/model.pt``)
scores every stem of a root in any layout (:mod:`selfrefine.data.layouts`) exactly as ``refine`` does
(mean of its sigmoid outputs over the stem's non-silent crops). Stems are ranked by the probability that
their file-name label is wrong: one minus the probability that the stem holds its own class and nothing
else, ``1 - p_label * prod(1 - p_other)`` (the classifier's outputs are independent sigmoids). Stems are
read one at a time, so memory does not grow with the library.

The report (``<out>/report.html``) needs no server and no network: one file of HTML, CSS and a few lines of
JavaScript (click a column to sort; ``#sort=<column>`` in the address sorts on load), spectrogram
thumbnails in ``<out>/thumbs/``, and audio players and links that point at the user's own files.
"""

from __future__ import annotations

import html
import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from selfrefine import CLASSES, paths
from selfrefine.config import Params
from selfrefine.data.audio import AudioError, read_audio, samples
from selfrefine.data.labels import format_labels, p_exactly
from selfrefine.data.layouts import training_stems
from selfrefine.errors import UserError
from selfrefine.outputs import atomic_dir, read_csv, write_csv, write_json

log = logging.getLogger(__name__)

COLUMNS = ["rank", "song", "label", "p_wrong", "predicted", *(f"p_{c}" for c in CLASSES), "path"]


def default_classifier(params: Params) -> Path:
    """The classifier of the last refinement round refined from the noisy labels (the clean baseline is not one)."""
    rounds = [r for r in params.refine.rounds if params.refine.root(paths.refined_table(r)) == "noisy"]
    if not rounds:
        raise UserError("refine.rounds: no round refines the noisy labels; pass --classifier")
    return paths.classifier_dir(rounds[-1]) / "model.pt"


def p_wrong(label: str, probs: np.ndarray) -> float:
    """Probability that a stem named ``label`` does not hold exactly its own class (see module docstring)."""
    return 1.0 - p_exactly(probs, [label])


@dataclass
class Audited:
    """One stem's audit row."""

    song: str
    label: str
    path: Path
    probs: np.ndarray
    predicted: str
    p_wrong: float
    thumb: str


def _thumbnail(audio: np.ndarray, sample_rate: int, out: Path) -> None:
    """A small log-magnitude spectrogram image (first 30 s, 0-8 kHz, time left to right)."""
    import matplotlib.pyplot as plt

    mono = audio.mean(axis=0)[: 30 * sample_rate]
    n_fft = 512
    hop = max(n_fft // 2, len(mono) // 240)  # about 240 columns whatever the length
    if len(mono) < n_fft:
        mono = np.pad(mono, (0, n_fft - len(mono)))
    frames = np.lib.stride_tricks.sliding_window_view(mono, n_fft)[::hop] * np.hanning(n_fft)
    spec = np.abs(np.fft.rfft(frames, axis=1)).T
    top = max(2, int(len(spec) * min(1.0, 16000 / sample_rate)))
    db = 20 * np.log10(spec[:top] + 1e-6)
    plt.imsave(out, db[::-1], cmap="magma", vmin=db.max() - 80, vmax=db.max(), format="png")


def audit(
    params: Params,
    root: Path,
    layout: str,
    classifier: Path,
    out: Path,
    truth: Path | None = None,
) -> dict:
    """Score, rank and report every training stem of ``root``.

    Args:
        params: the pipeline's params (rate, channels, silence level, threshold, ``data.on_bad_file``).
        root: the library, in ``layout``.
        classifier: a classifier checkpoint.
        out: report folder (``audit.csv``, ``report.html``, ``summary.json``, ``thumbs/``), replaced whole.
        truth: optional CSV with ``song``, ``stem`` and ``truth`` columns (e.g. ``data/noisy/truth.csv``);
            with it the summary reports the precision of the top-k list, k = the number of truly
            mislabelled stems.

    Returns:
        The summary written to ``summary.json``.
    """
    from selfrefine.devices import device
    from selfrefine.models.checkpoints import load_checkpoint
    from selfrefine.refine import audio_probabilities, class_thresholds

    scan = training_stems(root, layout)
    skipped = list(scan.problems)
    if skipped and params.data.on_bad_file == "error":
        raise UserError(f"{skipped[0]['reason']} (or set data.on_bad_file: skip)")
    model, package = load_checkpoint(classifier)
    model.to(device())
    sr, ch = params.audio.sample_rate, params.audio.channels
    crop = samples(package["provenance"]["crop_seconds"], sr)
    hop = samples(params.refine.hop_seconds, sr)
    if params.refine.threshold == "adaptive":
        validation = np.load(classifier.parent / "validation.npz")
        thresholds = class_thresholds("adaptive", validation["targets"], validation["probs"])
    else:
        thresholds = class_thresholds(params.refine.threshold, np.zeros((0, 4)), np.zeros((0, 4)))
    rows: list[Audited] = []
    with atomic_dir(out) as tmp:
        (tmp / "thumbs").mkdir()
        for n, stem in enumerate(scan.stems):
            try:
                audio = read_audio(stem.path, sr, ch, params.data.convert)
            except AudioError as err:
                if params.data.on_bad_file == "error":
                    raise UserError(f"{err} (or set data.on_bad_file: skip)") from None
                skipped.append({"path": str(stem.path), "reason": str(err)})
                continue
            probs = audio_probabilities(model, audio, crop, hop, params.refine.aggregate, params.data.silence_db, sr)
            thumb = f"thumbs/{n:06d}.png"
            _thumbnail(audio, sr, tmp / thumb)
            predicted = format_labels(c for c, p, t in zip(CLASSES, probs, thresholds) if p >= t)
            rows.append(Audited(stem.song, stem.stem, stem.path, probs, predicted, p_wrong(stem.stem, probs), thumb))
            if (n + 1) % max(1, len(scan.stems) // 20) == 0 or n + 1 == len(scan.stems):
                log.info("audit: %d/%d stems", n + 1, len(scan.stems))
        if not rows:
            raise UserError(f"{root}: no stem could be read; see the first problem: {skipped[0]['reason']}")
        rows.sort(key=lambda r: (-r.p_wrong, r.song, CLASSES.index(r.label)))
        table = [
            {
                "rank": i + 1,
                "song": r.song,
                "label": r.label,
                "p_wrong": round(r.p_wrong, 4),
                "predicted": r.predicted or "none",
                **{f"p_{c}": round(float(p), 4) for c, p in zip(CLASSES, r.probs)},
                "path": str(r.path),
            }
            for i, r in enumerate(rows)
        ]
        summary = {
            "root": str(root),
            "layout": layout,
            "classifier": str(classifier),
            "thresholds": dict(zip(CLASSES, map(float, thresholds))),
            "stems": len(rows),
            "flagged": sum(r.predicted != r.label for r in rows),
            "skipped": skipped,
        }
        if truth is not None:
            summary["truth"] = top_k_precision(rows, truth)
        write_csv(tmp / "audit.csv", table, COLUMNS)
        write_json(tmp / "summary.json", summary)
        (tmp / "report.html").write_text(report_html(rows, summary, out))
    log.info(
        "audit: %d stems, %d flagged (predicted set differs from the file name); report %s",
        summary["stems"],
        summary["flagged"],
        out / "report.html",
    )
    return summary


def top_k_precision(rows: list[Audited], truth: Path) -> dict:
    """Precision of the top-k of the ranking, k = the number of stems whose truth is not their file name."""
    known = {(r["song"], r["stem"]): r["truth"] for r in read_csv(truth)}
    missing = [r for r in rows if (r.song, r.label) not in known]
    if missing:
        raise UserError(f"{truth}: no truth for {missing[0].song}/{missing[0].label}; is it this library's truth?")
    wrong = [known[(r.song, r.label)] != r.label for r in rows]
    k = sum(wrong)
    hits = sum(wrong[:k])
    return {"mislabelled": k, "top_k_hits": hits, "top_k_precision": hits / k if k else float("nan")}


def _bar(p: float) -> str:
    return f'<span class="bar"><span style="width:{100 * p:.0f}%"></span></span>{p:.2f}'


def report_html(rows: list[Audited], summary: dict, out: Path) -> str:
    """The sortable offline report: one row per stem, most likely mislabelled first."""
    body = []
    for i, r in enumerate(rows):
        link = html.escape(Path(os.path.relpath(r.path.resolve(), out.resolve())).as_posix())
        probs = "".join(f'<td data-v="{p:.4f}">{_bar(float(p))}</td>' for p in r.probs)
        body.append(
            f'<tr><td data-v="{i + 1}">{i + 1}</td><td>{html.escape(r.song)}</td><td>{r.label}</td>'
            f'<td data-v="{r.p_wrong:.4f}">{_bar(r.p_wrong)}</td><td>{r.predicted or "none"}</td>{probs}'
            f'<td><img src="{r.thumb}" alt="spectrogram" loading="lazy"></td>'
            f'<td><audio controls preload="none" src="{link}"></audio><br><a href="{link}">{html.escape(r.path.name)}</a>'
            "</td></tr>"
        )
    heads = ["rank", "song", "label", "p_wrong", "predicted", *(f"p_{c}" for c in CLASSES)]
    header = "".join(f'<th data-col="{i}">{h}</th>' for i, h in enumerate(heads)) + "<th>spectrogram</th><th>audio</th>"
    truth = summary.get("truth")
    facts = (
        f"{summary['stems']} stems of {html.escape(summary['root'])} ({summary['layout']} layout), scored by "
        f"{html.escape(summary['classifier'])}; {summary['flagged']} flagged (predicted set differs from the "
        f"file name); {len(summary['skipped'])} left out."
    )
    if truth:
        facts += (
            f" Against the truth: {truth['top_k_hits']} of the top {truth['mislabelled']} are mislabelled "
            f"(precision {truth['top_k_precision']:.3f})."
        )
    return TEMPLATE.format(
        facts=facts, header=header, body="\n".join(body), summary=html.escape(json.dumps(summary["thresholds"]))
    )


TEMPLATE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>selfrefine audit</title>
<style>
body {{ font: 14px system-ui, sans-serif; margin: 1.5em; }}
table {{ border-collapse: collapse; }}
th, td {{ border-bottom: 1px solid #ddd; padding: 4px 8px; text-align: left; vertical-align: middle; }}
th[data-col] {{ cursor: pointer; background: #f4f4f4; }}
th[data-col]:hover {{ background: #e4e4e4; }}
.bar {{ display: inline-block; width: 60px; height: 10px; background: #eee; margin-right: 4px; }}
.bar span {{ display: block; height: 100%; background: #c0392b; }}
img {{ width: 160px; height: 48px; }}
</style></head><body>
<h1>Stems most likely mislabelled first</h1>
<p id="facts">{facts}</p>
<p>p_wrong: the probability that the stem does not hold exactly the class its file name says. Thresholds: {summary}.
Click a column to sort it.</p>
<p id="status"></p>
<table id="stems"><thead><tr>{header}</tr></thead>
<tbody>
{body}
</tbody></table>
<script>
const table = document.getElementById("stems");
const status = document.getElementById("status");
function sortBy(col, descending) {{
  const tbody = table.tBodies[0];
  const rows = Array.from(tbody.rows);
  const key = r => {{ const c = r.cells[col]; return c.dataset.v !== undefined ? parseFloat(c.dataset.v) : c.textContent; }};
  rows.sort((a, b) => {{ const x = key(a), y = key(b); const o = x < y ? -1 : x > y ? 1 : 0; return descending ? -o : o; }});
  rows.forEach(r => tbody.appendChild(r));
  const name = table.tHead.rows[0].cells[col].textContent;
  status.textContent = rows.length + " stems, sorted by " + name + (descending ? " (descending)" : " (ascending)");
  table.dataset.sorted = col + (descending ? "-" : "+");
}}
Array.from(table.tHead.rows[0].cells).forEach(th => {{
  if (th.dataset.col === undefined) return;
  th.addEventListener("click", () => sortBy(+th.dataset.col, table.dataset.sorted === th.dataset.col + "+"));
}});
const wanted = new URLSearchParams(location.hash.slice(1)).get("sort");
const heads = Array.from(table.tHead.rows[0].cells).map(th => th.textContent);
if (wanted && heads.includes(wanted)) sortBy(heads.indexOf(wanted), false); else sortBy(0, false);
</script>
</body></html>
"""
