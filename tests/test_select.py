"""The selection control: clean labels on exactly the stems the control table's pools keep."""

import json
from pathlib import Path

import pytest
import yaml

from selfrefine.config import parse_params
from selfrefine.data.labels import LabelledStem, read_label_table, write_label_table
from selfrefine.errors import UserError
from selfrefine.stages import select

from conftest import ROOT


def _stem(song: str, stem: str, labels: str) -> LabelledStem:
    return LabelledStem(song, stem, f"{song}/{stem}.wav", frozenset(t for t in labels.split("+") if t))


CLEAN = [
    _stem("a", "bass", "bass"),
    _stem("a", "other", "other"),  # refined hears vocals in it: out of refined's single pools
    _stem("a", "vocals", "vocals+drums"),  # clean has two labels: out of clean's pools anyway
    _stem("b", "drums", "drums"),  # refined calls it bass: still pooled (elsewhere), so kept with its clean label
]
REFINED = [
    _stem("a", "bass", "bass"),
    _stem("a", "other", "other+vocals"),
    _stem("a", "vocals", "vocals"),
    _stem("b", "drums", "bass"),
]


def test_the_control_keeps_clean_labels_only_where_the_refined_pools_keep_the_stem() -> None:
    table = select.selected(CLEAN, REFINED, "single")
    assert [s.labels for s in table] == [
        frozenset({"bass"}),
        frozenset(),
        frozenset({"vocals", "drums"}),
        frozenset({"drums"}),
    ]
    named = select.selected(CLEAN, REFINED, "named")  # named: refined keeps a stem holding its file's class
    assert [bool(s.labels) for s in named] == [True, True, True, False]


def test_the_stage_writes_the_table_and_counts_what_left(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    params = parse_params(yaml.safe_load((ROOT / "params.yaml").read_text()))
    with pytest.raises(UserError, match="data/labels/clean.csv: missing; run the corrupt stage first"):
        select.run(params)
    write_label_table("data/labels/clean.csv", CLEAN)
    with pytest.raises(UserError, match="data/labels/refined_2.csv: missing; run the refine@2 stage first"):
        select.run(params)
    write_label_table("data/labels/refined_2.csv", REFINED)
    select.run(params)
    assert [s.labels for s in read_label_table("data/labels/selected.csv")][1] == frozenset()
    report = json.loads(Path("metrics/select/selected.json").read_text())
    assert report["left_clean_pools"] == {"bass": 0, "drums": 0, "other": 1, "vocals": 0}
    assert report["unlabelled_by_clean_labels"] == {"other": 1}
    assert report["pool_sizes"] == {"bass": 1, "drums": 1, "other": 0, "vocals": 0}
    write_label_table("data/labels/refined_2.csv", REFINED[:3])
    with pytest.raises(UserError, match="list different stems"):
        select.run(params)
