import json
from pathlib import Path

import pytest

from selfrefine import CLASSES
from selfrefine.compare import _find_experiment, comparison_table, gap_closed, markdown, update_readme
from selfrefine.errors import UserError


def _metrics(value: float) -> dict:
    per = {c: value + i for i, c in enumerate(CLASSES)}
    summary = {**per, "mean_over_sources": value + 1.5}
    return {"global_sdr": {"mean": summary, "median": summary}, "sdr": {"median": summary, "mean": summary}}


def test_gap_closed() -> None:
    assert gap_closed(4.0, 5.5, 6.0) == pytest.approx(0.75)
    assert gap_closed(4.0, 6.5, 6.0) == pytest.approx(1.25)
    assert gap_closed(6.0, 5.0, 6.0) is None


def test_comparison_table_and_markdown() -> None:
    results = {
        name: {"demucs": _metrics(v), "xumx": _metrics(v - 1)}
        for name, v in (("noisy", 2.0), ("refined_2", 3.5), ("clean", 4.0))
    }
    table = comparison_table(results)
    assert table["global_sdr"]["demucs"]["refined_2"]["mean"] == 5.0
    assert table["gap_closed"]["xumx"]["refined_2"] == pytest.approx(0.75)
    text = markdown(table)
    assert "| demucs | refined_2 | 3.50 | 4.50 | 5.50 | 6.50 | **5.00** | 5.00 | 75 % |" in text


def test_experiment_lookup_in_exp_show_json() -> None:
    shown = [
        {"rev": "workspace", "name": None, "data": {}},
        {"rev": "abc", "experiments": [{"revs": [{"rev": "def", "name": "compare-noisy-1", "data": {"x": 1}}]}]},
    ]
    assert _find_experiment(shown, "compare-noisy-1") == {"x": 1}
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

    names = {"noisy": "compare-noisy-1", "clean": "compare-clean-1"}
    record = {
        "metrics": {"metrics/separation/demucs.json": {"data": _metrics(2.0)}},
        "timestamp": "2026-01-01T00:00:00",
    }
    shown = [{"name": exp, "data": record} for exp in names.values()]
    outputs = {
        ("queue", "status"): "aaa  compare-noisy-1  Success\nbbb  compare-clean-1  Running\n",
        ("exp", "show", "--json", "--all-commits"): json.dumps(shown),
    }
    monkeypatch.setattr(compare, "_dvc", lambda *args: outputs[args])
    results, _ = compare._results(names, ["demucs"], compare._queue_status(names))
    assert set(results) == {"noisy"}
