"""``selfrefine audit``: the ranking, the report's numbers, bad files, and the HTML in a real browser."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
import yaml
from typer.testing import CliRunner

from selfrefine import CLASSES
from selfrefine.audit import p_wrong
from selfrefine.cli import app
from selfrefine.models.checkpoints import save_checkpoint
from selfrefine.models.registry import build
from selfrefine.outputs import read_csv

from conftest import RATE, ROOT


def _classifier(path: Path) -> Path:
    kwargs = {"variant": "convnext_atto", "sample_rate": RATE, "n_mels": 32, "n_fft": 256, "hop_length": 64}
    torch.manual_seed(0)
    save_checkpoint(path, build("classifier", kwargs), "classifier", kwargs, crop_seconds=1.0)
    return path


def _params(tmp_path: Path, **data) -> Path:
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["audio"] = {"sample_rate": RATE, "channels": 1}
    params["data"].update(data)
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(params))
    return path


def _audit(tmp_path: Path, root: Path, *extra: str, **data):
    model = _classifier(tmp_path / "classifier.pt")
    args = ["audit", str(root), "--classifier", str(model), "--out", str(tmp_path / "report")]
    return CliRunner().invoke(app, [*args, *extra, "--params", str(_params(tmp_path, **data))])


def test_p_wrong_is_one_minus_the_chance_of_exactly_the_named_class() -> None:
    assert p_wrong("bass", np.array([1.0, 0.0, 0.0, 0.0])) == 0.0
    assert p_wrong("bass", np.array([0.0, 1.0, 0.0, 0.0])) == 1.0
    assert p_wrong("drums", np.array([0.5, 0.8, 0.0, 0.5])) == pytest.approx(1 - 0.8 * 0.5 * 0.5)


def test_audit_ranks_every_stem_and_scores_the_top_k_against_the_truth(dataset: Path, tmp_path: Path) -> None:
    truth = tmp_path / "truth.csv"
    songs = [f"train_{i}" for i in range(4)]
    wrong = {("train_1", "bass"), ("train_3", "vocals")}
    truth.write_text(
        "song,stem,truth\n" + "".join(f"{s},{c},{'drums' if (s, c) in wrong else c}\n" for s in songs for c in CLASSES)
    )
    result = _audit(tmp_path, dataset, "--truth", str(truth))
    assert result.exit_code == 0, result.output
    rows = read_csv(tmp_path / "report" / "audit.csv")
    assert len(rows) == 16 and [int(r["rank"]) for r in rows] == list(range(1, 17))
    scores = [float(r["p_wrong"]) for r in rows]
    assert scores == sorted(scores, reverse=True)
    for r in rows:  # the CSV's score is the formula over the CSV's own probabilities
        probs = np.array([float(r[f"p_{c}"]) for c in CLASSES])
        assert float(r["p_wrong"]) == pytest.approx(p_wrong(r["label"], probs), abs=2e-4)
        assert Path(r["path"]) == dataset / "train" / r["song"] / f"{r['label']}.wav"
    summary = yaml.safe_load((tmp_path / "report" / "summary.json").read_text())
    top = {(r["song"], r["label"]) for r in rows[:2]}
    assert summary["truth"] == {
        "mislabelled": 2,
        "top_k_hits": len(top & wrong),
        "top_k_precision": len(top & wrong) / 2,
    }
    assert len(list((tmp_path / "report" / "thumbs").glob("*.png"))) == 16


def test_a_bad_stem_is_one_line_or_skipped_by_its_own_name(dataset: Path, tmp_path: Path) -> None:
    bad = dataset / "train" / "train_2" / "drums.wav"
    sf.write(bad, np.full((RATE, 1), np.nan), RATE, subtype="FLOAT")
    result = _audit(tmp_path, dataset)
    assert result.exit_code == 1
    assert (
        result.output
        == f"error: {bad}: contains NaN or infinite samples; re-export it (or set data.on_bad_file: skip)\n"
    )
    assert not (tmp_path / "report").exists()
    result = _audit(tmp_path, dataset, on_bad_file="skip")
    assert result.exit_code == 0, result.output
    summary = yaml.safe_load((tmp_path / "report" / "summary.json").read_text())
    assert summary["stems"] == 15 and [s["path"] for s in summary["skipped"]] == [str(bad)]


def _chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if not found:
        if os.environ.get("CI"):
            pytest.fail("CI must have headless Chromium (setup.sh installs Debian's chromium)")
        pytest.skip("no chromium here (./setup.sh test installs it)")
    return found


def _dom(chromium: str, url: str) -> str:
    proc = subprocess.run(
        [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--dump-dom", url],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stdout


def _table(dom: str) -> list[list[str]]:
    body = dom.split("<tbody>")[1].split("</tbody>")[0]
    return [re.findall(r"<td[^>]*>(.*?)</td>", row, re.S) for row in re.findall(r"<tr>(.*?)</tr>", body, re.S)]


def test_the_report_works_in_a_real_browser(dataset: Path, tmp_path: Path) -> None:
    chromium = _chromium()
    assert _audit(tmp_path, dataset).exit_code == 0
    report = tmp_path / "report" / "report.html"
    dom = _dom(chromium, report.as_uri())
    assert "16 stems, sorted by rank (ascending)" in dom  # the script ran
    rows = _table(dom)
    csv_rows = read_csv(tmp_path / "report" / "audit.csv")
    assert [(r[1], r[2]) for r in rows] == [(c["song"], c["label"]) for c in csv_rows]
    for row in rows:  # thumbnails and audio point at files that exist
        image = re.search(r'<img src="([^"]+)"', row[-2]).group(1)
        audio = re.search(r'<audio[^>]*src="([^"]+)"', row[-1]).group(1)
        assert (report.parent / image).is_file() and (report.parent / audio).resolve().is_file()
    dom = _dom(chromium, report.as_uri() + "#sort=song")
    assert "16 stems, sorted by song (ascending)" in dom
    songs = [r[1] for r in _table(dom)]
    assert songs == sorted(songs) and songs != [c["song"] for c in csv_rows]
