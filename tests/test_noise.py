from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from selfrefine import CLASSES
from selfrefine.data.audio import read_audio
from selfrefine.data.layouts import training_stems
from selfrefine.data.noise import Corruption, corrupt_dataset, plan_corruption
from selfrefine.errors import UserError
from selfrefine.outputs import read_csv

from conftest import RATE


def _corrupt(root: Path, out: Path, rate: float, kinds: dict, truth_known: bool = True):
    """The stage's call: corrupt the training stems the musdb layout finds under ``root``."""
    rows = [{"song": s.song, "stem": s.stem, "path": str(s.path)} for s in training_stems(root, "musdb").stems]
    return corrupt_dataset(rows, out, rate, kinds, 0, RATE, 1, True, truth_known)


def test_plan_hits_the_rate_exactly_and_is_deterministic() -> None:
    stems = [(f"s{i}", c) for i in range(100) for c in CLASSES]
    plan = plan_corruption(stems, 0.3, {"swap": 1, "merge": 1, "silent": 0}, seed=3)
    assert len(plan) == 120
    assert plan == plan_corruption(stems, 0.3, {"swap": 1, "merge": 1, "silent": 0}, seed=3)
    assert plan != plan_corruption(stems, 0.3, {"swap": 1, "merge": 1, "silent": 0}, seed=4)
    kinds = [c.kind for c in plan.values()]
    assert {"swap", "merge"} == set(kinds) and 40 < kinds.count("swap") < 80
    assert all(c.other != label for (_, label), c in plan.items())


def test_a_zero_weight_kind_leaves_the_plan_unchanged_and_foreign_audio_comes_from_another_song() -> None:
    stems = [(f"s{i}", c) for i in range(100) for c in CLASSES]
    before = plan_corruption(stems, 0.3, {"swap": 1, "merge": 1, "silent": 0}, seed=3)
    assert before == plan_corruption(stems, 0.3, {"swap": 1, "merge": 1, "silent": 0, "foreign": 0}, seed=3)
    foreign = plan_corruption(stems, 0.3, {"foreign": 1}, seed=3)
    assert len(foreign) == 120 and {c.kind for c in foreign.values()} == {"foreign"}
    assert all(c.song != song and c.other != label for (song, label), c in foreign.items())
    assert len({c.song for c in foreign.values()}) > 50


def test_truth_of_each_kind() -> None:
    assert Corruption("swap", "drums").truth("bass") == {"drums"}
    assert Corruption("merge", "drums").truth("bass") == {"bass", "drums"}
    assert Corruption("silent", None).truth("bass") == frozenset()
    assert Corruption("foreign", "drums", "song_b").truth("bass") == {"drums"}


ALL_KINDS = {"swap": 1, "merge": 1, "silent": 1, "foreign": 1}


@pytest.mark.parametrize("rate, kinds", [(0.3, ALL_KINDS), (0.5, ALL_KINDS), (0.5, {"foreign": 1})])
def test_corrupted_files_really_hold_the_wrong_audio(dataset: Path, tmp_path: Path, rate: float, kinds: dict) -> None:
    out = tmp_path / "noisy"
    rows, summary = _corrupt(dataset, out, rate, kinds)
    truth = read_csv(out / "truth.csv")
    assert truth == [{k: str(v) for k, v in r.items()} for r in rows]
    assert len(truth) == 16 and summary["stems"] == 16
    assert abs(summary["rate"] - rate) <= 0.05
    assert abs(sum(r["noise"] != "" for r in truth) / 16 - rate) <= 0.05
    for row in truth:
        song, label = row["song"], row["stem"]
        noisy = read_audio(out / "train" / song / f"{label}.wav", RATE, 1)
        clean = {c: read_audio(dataset / "train" / song / f"{c}.wav", RATE, 1) for c in CLASSES}
        if row["noise"] == "":
            np.testing.assert_array_equal(noisy, clean[label])
            assert row["truth"] == label
        elif row["noise"] == "swap":
            (other,) = row["truth"].split("+")
            assert other != label
            np.testing.assert_array_equal(noisy, clean[other])
        elif row["noise"] == "merge":
            parts = row["truth"].split("+")
            assert label in parts and len(parts) == 2
            np.testing.assert_array_equal(noisy, clean[parts[0]] + clean[parts[1]])
        elif row["noise"] == "foreign":  # another song's clean stem of the class in truth
            donors = [
                s.name
                for s in (dataset / "train").iterdir()
                if s.name != song and np.array_equal(noisy, read_audio(s / f"{row['truth']}.wav", RATE, 1))
            ]
            assert row["truth"] != label and donors, row
        else:
            assert row["truth"] == "" and not noisy.any()
    assert {r["noise"] for r in truth} - {""} <= set(kinds)
    assert sorted(p.name for p in (dataset / "train").iterdir()) == sorted(p.name for p in (out / "train").iterdir())


def test_source_audio_is_never_modified(dataset: Path, tmp_path: Path) -> None:
    before = {p: p.read_bytes() for p in dataset.rglob("*.wav")}
    _corrupt(dataset, tmp_path / "noisy", 1.0, {"swap": 1, "merge": 1, "silent": 1})
    assert before == {p: p.read_bytes() for p in dataset.rglob("*.wav")}


def test_unknown_truth_is_marked(dataset: Path, tmp_path: Path) -> None:
    _corrupt(dataset, tmp_path / "noisy", 0.0, {"swap": 1}, truth_known=False)
    assert {r["truth"] for r in read_csv(tmp_path / "noisy" / "truth.csv")} == {"?"}


def test_a_song_without_all_stems_is_never_corrupted_or_swapped_in(dataset: Path, tmp_path: Path) -> None:
    rows = [{"song": s.song, "stem": s.stem, "path": str(s.path)} for s in training_stems(dataset, "musdb").stems]
    rows = [r for r in rows if (r["song"], r["stem"]) != ("train_0", "vocals")]  # e.g. a csv-layout song
    _, summary = corrupt_dataset(rows, tmp_path / "noisy", 1.0, {"swap": 1, "merge": 1}, 0, RATE, 1, True, True)
    truth = read_csv(tmp_path / "noisy" / "truth.csv")
    assert summary["stems"] == summary["corrupted"] == 15 == len(truth)
    assert not any("vocals" in r["truth"] for r in truth if r["song"] == "train_0")
    assert not (tmp_path / "noisy" / "train" / "train_0" / "vocals.wav").exists()


def test_flac_stems_are_linked_in_their_own_format(dataset: Path, tmp_path: Path) -> None:
    song = dataset / "train" / "train_1"
    audio = read_audio(song / "bass.wav", RATE, 1)
    sf.write(song / "bass.flac", audio.T, RATE, subtype="PCM_24")
    (song / "bass.wav").unlink()
    rows, _ = _corrupt(dataset, tmp_path / "noisy", 0.0, {"swap": 1})
    row = next(r for r in rows if (r["song"], r["stem"]) == ("train_1", "bass"))
    assert row["path"].endswith("train/train_1/bass.flac")
    assert Path(row["path"]).read_bytes() == (song / "bass.flac").read_bytes()


def test_nothing_to_corrupt_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="run the index stage first"):
        corrupt_dataset([], tmp_path / "noisy", 0.3, {"swap": 1}, 0, RATE, 1, True, True)
    assert not (tmp_path / "noisy").exists()


@pytest.mark.parametrize(
    ("config", "links"), [("", False), ("[cache]\n    type = hardlink,copy\n", True), (None, True)]
)
def test_stems_are_hard_linked_only_where_dvc_copies_them_into_its_cache(
    dataset: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, config: str | None, links: bool
) -> None:
    """DVC with cache type hardlink links a committed output into its cache and makes it read-only: a user's
    stem hard-linked into data/noisy would become that read-only cache object. Then (or with no DVC config to
    read) the clean stems are copied; with DVC's default types, linked."""
    from selfrefine.stages.corrupt import dvc_links_cache

    project = tmp_path / "project"
    if config is not None:
        (project / ".dvc").mkdir(parents=True)
        (project / ".dvc" / "config").write_text(config)
    project.mkdir(exist_ok=True)
    monkeypatch.chdir(project)
    assert dvc_links_cache() is links
    rows = [{"song": s.song, "stem": s.stem, "path": str(s.path)} for s in training_stems(dataset, "musdb").stems]
    out, _ = corrupt_dataset(rows, tmp_path / "noisy", 0.0, {"swap": 1}, 0, RATE, 1, True, True, link=not links)
    source = next(s.path for s in training_stems(dataset, "musdb").stems)
    copy = next(Path(r["path"]) for r in out if Path(r["path"]).name == source.name and source.parent.name in r["path"])
    assert copy.read_bytes() == source.read_bytes()
    assert copy.samefile(source) is not links
