"""Without ground truth (real noisy data such as SDX'23) the clean-label baselines write explicit skips."""

import json
from pathlib import Path

import yaml

from selfrefine.config import merge_into, parse_params
from selfrefine.data.labels import write_label_table
from selfrefine.stages import classify, refine

from conftest import ROOT


def test_clean_baselines_are_skipped_without_truth(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    data = merge_into(
        yaml.safe_load((ROOT / "params.yaml").read_text()), {"data": {"truth": False}, "noise": {"rate": 0}}
    )
    params = parse_params(data)
    write_label_table(Path("data/labels/clean.csv"), [])
    classify.run(params, "clean", "clean")
    refine.run(params, "clean", "clean")
    for folder in (
        "models/classifier/clean",
        "dvclive/classify_clean",
        "plots/train/classify_clean",
        "plots/refine/clean",
    ):
        assert (Path(folder) / "SKIPPED").read_text().startswith("skipped: ")
    assert "skipped" in json.loads(Path("metrics/classifier/clean.json").read_text())
    assert "skipped" in json.loads(Path("metrics/refine/clean.json").read_text())
    assert Path("data/labels/refined_clean.csv").read_text().strip() == "song,stem,path,labels"
