from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from selfrefine.data.index import BadDataError, Checks, build_index, evaluation_songs, label_tables
from selfrefine.data.labels import LabelledStem, format_labels, parse_labels, read_label_table, write_label_table
from selfrefine.data.noise import corrupt_dataset
from selfrefine.data.stems import StemStore
from selfrefine.outputs import read_csv

from conftest import RATE


def _noisy(dataset: Path, tmp_path: Path) -> Path:
    corrupt_dataset(dataset, tmp_path / "noisy", 0.25, {"swap": 1, "merge": 1}, 0, RATE, 1, True, True)
    return tmp_path / "noisy"


def _index(noisy: Path, root: Path, **kw):
    args = {"sample_rate": RATE, "channels": 1, "convert": True, "silence_db": -60.0, "on_bad_file": "error"}
    return build_index(noisy, root, Checks(**{**args, **kw}))


def test_index_describes_every_stem_with_truth(dataset: Path, tmp_path: Path) -> None:
    noisy = _noisy(dataset, tmp_path)
    rows, skipped = _index(noisy, dataset)
    assert skipped == [] and len(rows) == 24
    train = [r for r in rows if r["split"] == "train"]
    assert sum(r["noise"] != "" for r in train) == 4
    assert all(r["truth"] == r["stem"] for r in rows if r["noise"] == "")
    assert all(r["sample_rate"] == RATE and r["channels"] == 1 and r["seconds"] == 1.0 for r in rows)
    tables = label_tables(rows)
    assert [s.labels for s in tables["noisy"]] == [frozenset({r["stem"]}) for r in train]
    assert [format_labels(s.labels) for s in tables["clean"]] == [r["truth"] for r in train]
    assert set(evaluation_songs(rows)) == {"test_0", "test_1"}


def _break(path: Path, how: str) -> None:
    if how == "corrupt":
        path.write_bytes(b"RIFF....garbage")
    elif how == "empty":
        sf.write(path, np.zeros((0, 1)), RATE)
    elif how == "nan":
        sf.write(path, np.full((RATE, 1), np.nan), RATE, subtype="FLOAT")
    elif how == "rate":
        sf.write(path, np.zeros((RATE, 1)) + 0.1, 2 * RATE, subtype="FLOAT")
    elif how == "missing":
        path.unlink()


@pytest.mark.parametrize(
    ("how", "message"),
    [
        ("corrupt", "unreadable audio"),
        ("empty", "empty audio"),
        ("nan", "NaN or infinite"),
        ("rate", "sample rate 16000 Hz, expected 8000 Hz"),
        ("missing", "missing stem vocals.wav"),
    ],
)
def test_bad_files_stop_the_index_with_one_line(dataset: Path, tmp_path: Path, how: str, message: str) -> None:
    noisy = _noisy(dataset, tmp_path)
    bad = noisy / "train" / "train_2" / "vocals.wav"
    _break(bad, how)
    with pytest.raises(BadDataError, match=message) as err:
        _index(noisy, dataset, convert=False)
    assert ("train_2" in str(err.value)) and "\n" not in str(err.value)
    rows, skipped = _index(noisy, dataset, convert=False, on_bad_file="skip")
    assert len(skipped) == 1 and message in skipped[0]["reason"]
    kept = {(r["song"], r["stem"]) for r in rows}
    assert ("train_2", "vocals") not in kept
    assert ("train_2", "bass") in kept or how == "missing"


def test_wrong_rate_is_converted_when_allowed(dataset: Path, tmp_path: Path) -> None:
    noisy = _noisy(dataset, tmp_path)
    _break(noisy / "train" / "train_1" / "bass.wav", "rate")
    rows, skipped = _index(noisy, dataset, convert=True)
    assert not skipped
    row = next(r for r in rows if r["song"] == "train_1" and r["stem"] == "bass")
    assert row["sample_rate"] == 2 * RATE


def test_a_bad_test_song_is_dropped_whole_when_skipping(dataset: Path, tmp_path: Path) -> None:
    noisy = _noisy(dataset, tmp_path)
    _break(dataset / "test" / "test_1" / "drums.wav", "nan")
    rows, skipped = _index(noisy, dataset, on_bad_file="skip")
    assert set(evaluation_songs(rows)) == {"test_0"} and len(skipped) == 1


def test_label_table_round_trip(tmp_path: Path) -> None:
    stems = [
        LabelledStem("s", "bass", "p.wav", frozenset({"drums", "bass"})),
        LabelledStem("s", "other", "q", frozenset()),
    ]
    write_label_table(tmp_path / "t.csv", stems, [{"p": 1}, {"p": 2}])
    assert read_label_table(tmp_path / "t.csv") == stems
    assert read_csv(tmp_path / "t.csv")[0]["labels"] == "bass+drums"
    with pytest.raises(ValueError, match="unknown class"):
        parse_labels("bass+guitar")


def test_stem_store_crops_avoid_silence(tmp_path: Path) -> None:
    audio = np.zeros((1, 4 * RATE), dtype=np.float32)
    audio[:, 3 * RATE :] = 0.5
    sf.write(tmp_path / "a.wav", audio.T, RATE, subtype="FLOAT")
    sf.write(tmp_path / "b.wav", np.zeros((RATE, 1)), RATE, subtype="FLOAT")
    store = StemStore([str(tmp_path / "a.wav"), str(tmp_path / "b.wav")], RATE, 1, -60.0)
    rng = np.random.default_rng(0)
    loud = [store.crop(0, RATE // 2, rng, tries=50).any() for _ in range(20)]
    assert all(loud)
    assert store.is_silent(1) and not store.is_silent(0)
    assert store.crop(1, 2 * RATE, rng).shape == (1, 2 * RATE)
    windows = store.windows(0, RATE // 2, RATE // 2)
    assert windows.shape == (2, 1, RATE // 2)
