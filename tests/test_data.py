import re
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from selfrefine.data.index import BadDataError, Checks, build_index, evaluation_songs
from selfrefine.data.labels import LabelledStem, parse_labels, read_label_table, write_label_table
from selfrefine.data.layouts import LayoutError, training_stems
from selfrefine.data.stems import StemStore
from selfrefine.outputs import read_csv

from conftest import RATE, tone


def _index(root: Path, layout: str = "musdb", test_root: Path | None = None, **kw):
    args = {"sample_rate": RATE, "channels": 1, "convert": True, "silence_db": -60.0, "on_bad_file": "error"}
    return build_index(root, layout, test_root or root / "test", Checks(**{**args, **kw}))


def test_index_describes_every_stem_where_the_user_keeps_it(dataset: Path) -> None:
    (dataset / "train" / "train_0" / "mixture.wav").write_bytes(b"ignored: not a stem")
    rows, skipped = _index(dataset)
    assert skipped == [] and len(rows) == 24
    train = [r for r in rows if r["split"] == "train"]
    assert [Path(r["path"]) for r in train] == [dataset / "train" / r["song"] / f"{r['stem']}.wav" for r in train]
    assert all(r["sample_rate"] == RATE and r["channels"] == 1 and r["seconds"] == 1.0 for r in rows)
    assert set(evaluation_songs(rows)) == {"test_0", "test_1"}


def test_the_songs_layout_reads_song_folders_with_no_split(dataset: Path, tmp_path: Path) -> None:
    rows, _ = _index(dataset / "train", "songs", dataset / "test")
    assert {r["song"] for r in rows if r["split"] == "train"} == {f"train_{i}" for i in range(4)}


def test_the_csv_layout_reads_any_files_with_their_labels(tmp_path: Path) -> None:
    root = tmp_path / "library"
    lines = ["path,label,song"]
    for i, cls in enumerate(["bass", "drums", "vocals"]):
        write_audio_file = root / "takes" / f"take_{i}.flac"
        write_audio_file.parent.mkdir(parents=True, exist_ok=True)
        sf.write(write_audio_file, tone(cls).T, RATE)
        lines.append(f"takes/take_{i}.flac,{cls},{'a' if i < 2 else 'b'}")
    (root / "stems.csv").write_text("\n".join(lines) + "\n")
    scan = training_stems(root, "csv")
    assert [(s.song, s.stem, s.path.name) for s in scan.stems] == [
        ("a", "bass", "take_0.flac"),
        ("a", "drums", "take_1.flac"),
        ("b", "vocals", "take_2.flac"),
    ]
    (root / "stems.csv").write_text("path,label\nx.wav,guitar\n../y.wav,bass\nz.mp3,bass\n")
    (root / "z.mp3").write_bytes(b"")
    reasons = [p["reason"] for p in training_stems(root, "csv").problems]
    assert "label 'guitar' is not one of" in reasons[0] and "outside the root" in reasons[1]
    assert "a .mp3 file, a format not read here" in reasons[2]
    (root / "stems.csv").write_text("file,class\n")
    with pytest.raises(LayoutError, match="needs columns path and label"):
        training_stems(root, "csv")


def test_flac_is_read_and_other_formats_are_refused_saying_what_was_found(dataset: Path) -> None:
    song = dataset / "train" / "train_1"
    sf.write(song / "bass.flac", tone("bass").T, RATE)
    (song / "bass.wav").unlink()
    rows, _ = _index(dataset)
    assert any(r["path"].endswith("train_1/bass.flac") for r in rows)
    (song / "bass.flac").rename(song / "bass.m4a")
    with pytest.raises(BadDataError, match=r"train_1: found bass.m4a, a format not read here; convert it to WAV"):
        _index(dataset)


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
        ("missing", "missing stem vocals (no vocals.wav or vocals.flac)"),
    ],
)
def test_bad_files_stop_the_index_with_one_line_or_are_skipped_by_name(dataset: Path, how: str, message: str) -> None:
    bad = dataset / "train" / "train_2" / "vocals.wav"
    _break(bad, how)
    with pytest.raises(BadDataError, match=re.escape(message)) as err:
        _index(dataset, convert=False)
    assert "train_2" in str(err.value) and "\n" not in str(err.value)
    rows, skipped = _index(dataset, convert=False, on_bad_file="skip")
    assert len(skipped) == 1 and message in skipped[0]["reason"]
    assert skipped[0]["path"] == str(bad if how != "missing" else bad.parent)  # the user's own file or song
    assert "train_2" not in {r["song"] for r in rows} and len(rows) == 20


def test_wrong_rate_is_converted_when_allowed(dataset: Path) -> None:
    _break(dataset / "train" / "train_1" / "bass.wav", "rate")
    rows, skipped = _index(dataset, convert=True)
    assert not skipped
    row = next(r for r in rows if r["song"] == "train_1" and r["stem"] == "bass")
    assert row["sample_rate"] == 2 * RATE


def test_a_bad_test_song_is_dropped_whole_when_skipping(dataset: Path) -> None:
    _break(dataset / "test" / "test_1" / "drums.wav", "nan")
    rows, skipped = _index(dataset, on_bad_file="skip")
    assert set(evaluation_songs(rows)) == {"test_0"} and len(skipped) == 1


def test_no_usable_song_at_all_is_one_line(dataset: Path, tmp_path: Path) -> None:
    for song in (dataset / "test").iterdir():
        _break(song / "bass.wav", "nan")
    with pytest.raises(BadDataError, match="no usable test stem"):
        _index(dataset, on_bad_file="skip")
    with pytest.raises(LayoutError, match="point data.test_root at a folder of song folders"):
        _index(dataset, test_root=tmp_path / "nowhere")


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


def test_song_folds_partition_the_songs_evenly_and_reproducibly() -> None:
    from selfrefine.data.labels import LabelledStem, song_folds
    from selfrefine.errors import UserError

    stems = [LabelledStem(f"s{i:02d}", c, f"{i}/{c}.wav", frozenset({c})) for i in range(10) for c in ("bass", "drums")]
    folds = song_folds(stems, 3, seed=0)
    assert sorted(song for fold in folds for song in fold) == sorted({s.song for s in stems})
    assert sorted(len(f) for f in folds) == [3, 3, 4]
    assert folds == song_folds(stems, 3, seed=0) and folds != song_folds(stems, 3, seed=1)
    with pytest.raises(UserError, match="refine.folds 11: only 10 songs"):
        song_folds(stems, 11, seed=0)


def test_a_folder_output_is_replaced_whole_or_kept_and_a_killed_writers_leftovers_go(tmp_path: Path) -> None:
    from selfrefine.outputs import atomic_dir

    out = tmp_path / "plots" / "1"
    with atomic_dir(out) as folder:
        (folder / "a.png").write_text("old a")
        (folder / "b.png").write_text("old b")
    with pytest.raises(RuntimeError), atomic_dir(out) as folder:
        (folder / "a.png").write_text("new a")
        raise RuntimeError("the writer fails between two figures")
    assert sorted(f.name for f in out.iterdir()) == ["a.png", "b.png"] and (out / "a.png").read_text() == "old a"
    (tmp_path / "plots" / ".1.killed.tmp").mkdir()  # what a SIGKILL leaves: a temporary folder, an old one
    (tmp_path / "plots" / ".1.killed.old").mkdir()
    with atomic_dir(out) as folder:
        (folder / "a.png").write_text("new a")
    assert sorted(p.name for p in (tmp_path / "plots").iterdir()) == ["1"]
    assert [f.name for f in out.iterdir()] == ["a.png"]
