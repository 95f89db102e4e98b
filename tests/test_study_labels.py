"""The studies' label metrics, and a study whose refined labels no separator can train on, with no DVC at all."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from selfrefine import paths
from selfrefine.config import load_params
from selfrefine.errors import UserError
from selfrefine.experiments import studies

from conftest import ROOT

STAMP = "20260102-030405"

# (song, stem) -> label set; the file names say bass, drums, other, vocals, bass
NOISY = {("a", "bass"): "bass", ("a", "drums"): "drums", ("a", "other"): "other", ("b", "vocals"): "vocals",
         ("b", "bass"): "bass"}  # fmt: skip
REFINED_1 = NOISY | {("a", "bass"): "bass+drums", ("a", "other"): "vocals", ("b", "bass"): ""}
REFINED_2 = REFINED_1 | {("a", "other"): "other"}  # round 2 changes one stem of the 5 from refined_1
# against the file names round 2 has 2 of 5 changed (a/bass, b/bass): the share the stopping rule must not see
REFINE_2 = {"stems": 5, "changed": 2}


@pytest.fixture
def params():
    return load_params(ROOT / "params.yaml")


def _fake_commit(monkeypatch, refine: dict, rev: str = "rev-x") -> None:
    """An experiment's commit: its round-2 refine and classifier metrics and its label tables."""
    files = {
        paths.metrics("refine", "2"): refine,
        paths.metrics("classifier", "2"): {"test_clean_mixtures": {"exact_match": 0.75}},
    }
    tables = {"noisy": NOISY, "refined_1": REFINED_1, "refined_2": REFINED_2}

    def show(at: str, path: Path) -> str:
        assert at == rev
        return json.dumps(files[Path(path)])

    def labels_at(at: str, table: str) -> dict:
        assert at == rev
        return dict(tables[table])

    monkeypatch.setattr(studies, "output", show)
    monkeypatch.setattr(studies, "_labels_at", labels_at)


def test_the_changed_share_is_against_the_table_the_round_relabelled_not_the_file_names(monkeypatch) -> None:
    _fake_commit(monkeypatch, REFINE_2)
    out = studies.label_metrics("rev-x", "2", "refined_1")
    assert out == {"changed_share": 0.2, "changed_from_file_names": 0.4, "classifier_exact_match": 0.75}
    # the same round judged as if trained on the noisy table: every stem the file names disagree with counts
    assert studies.label_metrics("rev-x", "2", "noisy")["changed_share"] == 0.4


def test_the_truth_scores_are_reported_only_where_the_truth_is_known(monkeypatch) -> None:
    truth = {
        "label_accuracy_noisy": 0.6,
        "label_accuracy_input": 0.7,
        "label_accuracy_refined": 0.9,
        "detection": {"precision": 0.8, "recall": 0.5, "corrupted": 4},
        "clean_wrongly_changed": 1,
    }
    _fake_commit(monkeypatch, REFINE_2 | truth)
    assert studies.label_metrics("rev-x", "2", "refined_1") == {
        "changed_share": 0.2,
        "changed_from_file_names": 0.4,
        "classifier_exact_match": 0.75,
        "accuracy_noisy": 0.6,
        "accuracy_trained_on": 0.7,
        "accuracy_refined": 0.9,
        "precision": 0.8,
        "recall": 0.5,
        "clean_wrongly_changed": 1,
    }


def _fake_study(monkeypatch, refused: dict) -> list[dict]:
    """run_study's DVC side faked: the first batch refuses ``refused`` ({(point, table, seed): reason}) and
    finishes the rest; every experiment's scores name its rev. Returns the batches run_study asked for."""
    batches: list[dict] = []

    def run_batch(names, args, required, jobs, resume, refusals=None, **_):
        batches.append({"names": dict(names), "args": dict(args), "required": list(required)})
        if len(batches) == 1:
            refusals.update(refused)
        node = {"data": {"timestamp": "2026-01-02T04:04:05"}}
        return {key: {"rev": f"rev-{name}", **node} for key, name in names.items() if key not in refused}

    def song_scores(rev: str, model: str) -> list[dict]:
        return [{"song": rev, "source": "bass", "global_sdr": "1.5", "sdr": "2.5"}]

    def label_metrics(rev: str, round_key: str, trained_on: str) -> dict:
        return {"changed_share": 0.5, "rev": rev, "round": round_key, "trained_on": trained_on}

    monkeypatch.setattr(studies, "run_batch", run_batch)
    monkeypatch.setattr(studies, "tracked_roots", lambda roots: None)
    monkeypatch.setattr(studies, "song_scores", song_scores)
    monkeypatch.setattr(studies, "label_metrics", label_metrics)
    monkeypatch.setattr(studies, "tabulate", lambda params, study: {"tabulated": study})
    return batches


def test_a_refused_point_gets_one_label_only_run_and_no_scores(tmp_path: Path, monkeypatch, params) -> None:
    monkeypatch.chdir(tmp_path)
    assert params.study.seeds == 2 and params.study.models == ["demucs"] and params.study.rounds >= 5
    reason = "the pool of 'bass' is empty"
    # seed 0 of round 4 is refused; seed 1 of it trained: the point is still out of the scores (half a point is none)
    batches = _fake_study(monkeypatch, {("4", "refined_4", 0): reason})
    assert studies.run_study(params, "iterations", stamp=STAMP) == {"tabulated": "iterations"}
    assert len(batches) == 2
    name = f"study-iterations-4-labels-{STAMP}"
    assert batches[1] == {
        "names": {"4": name},
        "args": {"4": ["-S", "+refine.rounds.3=refined_2", "-S", "+refine.rounds.4=refined_3", "refine@4"]},
        "required": [paths.SUMMARY.as_posix()],
    }
    labels = json.loads(Path("metrics/studies/iterations/labels.json").read_text())
    rounds = [str(r) for r in range(1, params.study.rounds + 1)]
    assert list(labels) == rounds
    assert labels["4"] == {
        "changed_share": 0.5,
        "rev": f"rev-{name}",
        "round": "4",
        "trained_on": "refined_3",
        "separators_refused": reason,
    }
    for r in rounds:
        if r != "4":
            first = batches[0]["names"][(r, f"refined_{r}", 0)]
            assert labels[r] == {"changed_share": 0.5, "rev": f"rev-{first}", "round": r,
                                 "trained_on": "noisy" if r == "1" else f"refined_{int(r) - 1}"}  # fmt: skip
    with open("metrics/studies/iterations/demucs.csv") as f:
        rows = list(csv.DictReader(f))
    kept = {(r["point"], r["labels"], r["seed"]) for r in rows}
    assert kept == {
        (pt, table, str(k))
        for pt, table in [("shared", "noisy"), ("shared", "clean"), *((r, f"refined_{r}") for r in rounds if r != "4")]
        for k in range(2)
    }
    assert all(r["song"] == f"rev-{batches[0]['names'][(r['point'], r['labels'], int(r['seed']))]}" for r in rows)
    batch = json.loads(Path("metrics/studies/iterations/batch.json").read_text())
    assert batch["stamp"] == STAMP and batch["experiments"] == 2 * (2 + params.study.rounds)
    assert batch["label_runs"] == 1


def test_with_nothing_refused_no_label_only_run_is_named(tmp_path: Path, monkeypatch, params) -> None:
    monkeypatch.chdir(tmp_path)
    batches = _fake_study(monkeypatch, {})
    studies.run_study(params, "threshold", stamp=STAMP)
    assert batches[1]["names"] == {} and batches[1]["args"] == {}
    labels = json.loads(Path("metrics/studies/threshold/labels.json").read_text())
    assert not any("separators_refused" in v for v in labels.values())
    assert json.loads(Path("metrics/studies/threshold/batch.json").read_text())["label_runs"] == 0


@pytest.mark.parametrize(
    "study, refused, message",
    [
        ("threshold", ("shared", "noisy", 1), "the noisy table of point 'shared' \\(seed 1\\) cannot be trained on"),
        ("noise-rate", ("rate 0.1", "clean", 0), "the clean table of point 'rate 0.1' \\(seed 0\\) cannot be trained"),
    ],
)
def test_a_refused_reference_is_an_error(tmp_path: Path, monkeypatch, params, study, refused, message) -> None:
    monkeypatch.chdir(tmp_path)
    batches = _fake_study(monkeypatch, {refused: "the pool of 'bass' is empty"})
    with pytest.raises(UserError, match=message + ".*the pool of 'bass' is empty"):
        studies.run_study(params, study, stamp=STAMP)
    assert len(batches) == 1, "no label-only run is queued"
    assert not Path("metrics/studies", study, "labels.json").exists()
