import json
from pathlib import Path

import numpy as np
import pytest

from selfrefine import CLASSES
from selfrefine.compare import _find_experiment, tabulate, update_readme
from selfrefine.config import load_params
from selfrefine.errors import UserError
from selfrefine.outputs import read_csv, write_csv

from conftest import ROOT


def test_experiment_lookup_in_exp_show_json() -> None:
    shown = [
        {"rev": "workspace", "name": None, "data": {}},
        {"rev": "abc", "experiments": [{"revs": [{"rev": "def", "name": "compare-noisy-s0-1", "data": {"x": 1}}]}]},
    ]
    assert _find_experiment(shown, "compare-noisy-s0-1") == {
        "rev": "def",
        "name": "compare-noisy-s0-1",
        "data": {"x": 1},
    }
    assert _find_experiment(shown, "missing") is None


def test_readme_section_is_replaced_between_markers(tmp_path: Path) -> None:
    readme = tmp_path / "README.md"
    readme.write_text("intro\n<!-- results:start -->\nold\n<!-- results:end -->\noutro\n")
    update_readme(readme, "new table\n")
    assert readme.read_text() == "intro\n<!-- results:start -->\nnew table\n<!-- results:end -->\noutro\n"
    readme.write_text("no markers")
    with pytest.raises(UserError, match="markers"):
        update_readme(readme, "x")


def test_a_running_experiment_is_not_read_even_though_exp_show_lists_metrics(monkeypatch) -> None:
    from selfrefine import compare

    names = {("noisy", 0): "compare-noisy-s0-1", ("clean", 0): "compare-clean-s0-1"}
    record = {"metrics": {"metrics/separation/demucs.json": {"data": {}}}, "timestamp": "2026-01-01T00:00:00"}
    shown = [{"rev": exp, "name": exp, "data": record} for exp in names.values()]
    outputs = {
        ("queue", "status"): "aaa  compare-noisy-s0-1  Success\nbbb  compare-clean-s0-1  Running\n",
        ("exp", "show", "--json", "--all-commits"): json.dumps(shown),
    }
    monkeypatch.setattr(compare, "_dvc", lambda *args: outputs[args])
    assert set(compare._results(names, ["demucs"], compare._queue_status(names))) == {("noisy", 0)}


def _kept_scores(folder: Path, shift: dict[str, float]) -> None:
    rng = np.random.default_rng(0)
    rows = [
        {
            "labels": t,
            "seed": k,
            "song": f"song_{j}",
            "source": c,
            "global_sdr": 2 + d + 0.3 * k + rng.normal(),
            "sdr": 1,
        }
        for t, d in shift.items()
        for k in range(3)
        for j in range(5)
        for c in CLASSES
    ]
    for model in ("demucs", "xumx"):
        write_csv(folder / f"{model}.csv", rows, ["labels", "seed", "song", "source", "global_sdr", "sdr"])


def test_tabulate_writes_intervals_tables_words_and_plot_from_the_kept_scores(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    Path("README.md").write_text("<!-- results:start -->\n<!-- results:end -->\n")
    _kept_scores(Path("metrics/compare"), {"noisy": 0.0, "refined_2": 5.0, "clean": 5.0})
    table = tabulate(load_params(ROOT / "params.yaml"))
    demucs = json.loads(Path("metrics/compare.json").read_text())["models"]["demucs"]
    assert demucs == json.loads(json.dumps(table["models"]["demucs"]))
    for key in ("noisy", "refined_2", "clean", "refined_minus_noisy", "gap_closed"):
        assert set(demucs[key]) == {"mean", "ci_low", "ci_high"} and demucs[key]["ci_low"] <= demucs[key]["ci_high"]
    assert demucs["refined"] == "refined_2" and demucs["refined_minus_noisy"]["ci_low"] > 4
    readme = Path("README.md").read_text()
    assert "| demucs | refined_2 | **" in readme and "refined_2 − noisy = " in readme and "(established)" in readme
    assert Path("plots/compare.png").stat().st_size > 1000


def test_tables_run_on_different_seeds_are_refused(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    _kept_scores(Path("metrics/compare"), {"noisy": 0.0, "clean": 1.0})
    rows = [r for r in read_csv("metrics/compare/demucs.csv") if not (r["labels"] == "clean" and r["seed"] == "2")]
    write_csv(Path("metrics/compare/demucs.csv"), rows, list(rows[0]))
    with pytest.raises(UserError, match="same seeds and songs"):
        tabulate(load_params(ROOT / "params.yaml"))
