"""Pools beyond one label per stem: partial-label supervision (``separate.pool: partial``) and ranked pools
(``separate.keep``)."""

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from selfrefine import CLASSES
from selfrefine.config import ParamsError, merge_into, parse_params
from selfrefine.data.audio import write_audio
from selfrefine.data.labels import LabelledStem, build_pools, p_exactly, read_probabilities, write_label_table
from selfrefine.data.mixing import SourceMixer
from selfrefine.data.stems import StemStore
from selfrefine.errors import UserError
from selfrefine.models import losses
from selfrefine.stages import select
from selfrefine.training.separation import Grouped, SeparatorTraining, group, model_kwargs, truncated_mean

from conftest import RATE, ROOT, tone


def _params() -> dict:
    return yaml.safe_load((ROOT / "params.yaml").read_text())


def _stem(i: int, labels: str, name: str = "bass") -> LabelledStem:
    return LabelledStem(f"song{i}", name, f"{i}.wav", frozenset(t for t in labels.split("+") if t))


TABLE = [
    _stem(0, "bass"),
    _stem(1, "bass+other", "other"),
    _stem(2, "drums", "drums"),
    _stem(3, "drums+vocals", "vocals"),
    _stem(4, "other", "other"),
    _stem(5, "vocals", "vocals"),
    _stem(6, "", "drums"),
    _stem(7, "bass", "bass"),
]


def test_partial_pools_hold_a_stem_in_every_class_of_its_set() -> None:
    every = list(range(len(TABLE)))
    assert build_pools(TABLE, "single", every) == {"bass": [0, 7], "drums": [2], "other": [4], "vocals": [5]}
    assert build_pools(TABLE, "partial", every) == {
        "bass": [0, 1, 7],
        "drums": [2, 3],
        "other": [1, 4],
        "vocals": [3, 5],
    }
    assert build_pools(TABLE, "named", every) == {"bass": [0, 7], "drums": [2], "other": [1, 4], "vocals": [3, 5]}


def test_ranked_pools_keep_the_stems_likeliest_to_hold_exactly_their_set() -> None:
    probs = np.full((len(TABLE), 4), 0.02)
    probs[0, 0], probs[7, 0] = 0.6, 0.99  # stem 7 is the surer bass
    probs[1, [0, 2]] = 0.95, 0.9
    probs[1, 3] = 0.7  # stem 1 may hold vocals too: unlikely to hold exactly bass+other
    assert p_exactly(probs[7], {"bass"}) == pytest.approx(0.99 * 0.98**3)
    assert p_exactly(probs[1], {"bass", "other"}) == pytest.approx(0.95 * 0.98 * 0.9 * 0.3)
    every = list(range(len(TABLE)))
    ranked = build_pools(TABLE, "partial", every, keep=0.5, probabilities=probs)
    # bass: 7 (0.93) > 0 (0.56) > 1 (0.25); other: 1 (0.25) > 4 (0.02); drums+vocals (0.0004) ranks last
    assert ranked == {"bass": [0, 7], "drums": [2], "other": [1], "vocals": [5]}, "ceil(0.5 n), kept in index order"
    assert build_pools(TABLE, "single", every, keep=0.5, probabilities=probs)["bass"] == [7]
    assert build_pools(TABLE, "single", every, 1.0, probs) == build_pools(TABLE, "single", every)
    with pytest.raises(UserError, match=r"^separate.keep 0.5: ranked pools need a refined table's probabilities"):
        build_pools(TABLE, "single", every, keep=0.5)


def test_probabilities_are_read_from_a_refined_table_and_none_elsewhere(tmp_path: Path) -> None:
    probs = [{f"p_{c}": f"{0.1 * (k + 1):.2f}" for k, c in enumerate(CLASSES)} for _ in TABLE]
    write_label_table(tmp_path / "refined_1.csv", TABLE, probs)
    write_label_table(tmp_path / "noisy.csv", TABLE)
    assert read_probabilities(tmp_path / "refined_1.csv").tolist() == [[0.1, 0.2, 0.3, 0.4]] * len(TABLE)
    assert read_probabilities(tmp_path / "noisy.csv") is None


@pytest.mark.parametrize(("value", "ok"), [(1.0, True), (0.25, True), (0.0, False), (1.5, False), ("all", False)])
def test_keep_is_a_share(value, ok: bool) -> None:
    params = merge_into(_params(), {"separate": {"keep": value, "pool": "partial"}})
    if ok:
        assert parse_params(params).separate.keep == value
    else:
        with pytest.raises(ParamsError, match=r"separate.keep: "):
            parse_params(params)


def test_the_control_copies_ranked_pools() -> None:
    probs = np.full((len(TABLE), 4), 0.02)
    probs[7, 0] = 0.99
    probs[0, 0] = 0.6
    clean = [LabelledStem(s.song, s.stem, s.path, frozenset({s.stem})) for s in TABLE]
    table = select.selected(clean, TABLE, "single", keep=0.5, probabilities=probs)
    assert [bool(s.labels) for s in table] == [False, False, True, False, True, True, False, True]


@pytest.fixture
def store(tmp_path: Path) -> StemStore:
    """The stems of TABLE as audio: each holds a tone per class of its label set."""
    paths = []
    for i, s in enumerate(TABLE):
        audio = sum((tone(c, seed=i) for c in s.labels), np.zeros((1, RATE), dtype=np.float32)) + 1e-3
        write_audio(tmp_path / f"{i}.wav", audio.astype(np.float32), RATE)
        paths.append(str(tmp_path / f"{i}.wav"))
    return StemStore(paths, RATE, 1, -60.0)


def test_a_stem_of_several_classes_stands_for_all_of_them_once(store: StemStore) -> None:
    pools = build_pools(TABLE, "partial", list(range(len(TABLE))))
    mixer = SourceMixer(store, pools, RATE // 4, 3.0, RATE // 10, 0, [s.labels for s in TABLE])
    grouped = 0
    for _ in range(20):
        mix, sources, groups = mixer.batch(8)
        torch.testing.assert_close(mix, sources.sum(dim=1))
        assert torch.equal(groups.sum(dim=1), torch.ones(8, 4)), "every class is in exactly one group"
        for example, g in zip(sources, groups):
            for k in range(4):
                if g[k].sum() == 0:
                    assert float(example[k].abs().max()) == 0.0, "a slot an earlier stem stands for is silent"
                else:
                    assert g[k, k] == 1 and int(g[k, :k].sum()) == 0, "a stem sits in its set's first class"
            grouped += int(bool((g != torch.eye(4)).any()))
    assert grouped > 0


def test_partial_pools_of_single_stems_draw_the_examples_single_pools_do(store: StemStore) -> None:
    singles = [0, 2, 4, 5, 7]
    pools = build_pools(TABLE, "single", singles)
    plain = SourceMixer(store, pools, RATE // 4, 3.0, RATE // 10, 3).batch(6)
    partial = SourceMixer(store, pools, RATE // 4, 3.0, RATE // 10, 3, [s.labels for s in TABLE]).batch(6)
    assert torch.equal(plain[0], partial[0]) and torch.equal(plain[1], partial[1])
    assert torch.equal(partial[2], torch.eye(4).expand(6, 4, 4))


def test_a_partial_pool_needs_a_stem_of_each_class_alone(store: StemStore) -> None:
    pools = build_pools(TABLE, "partial", [0, 1, 2, 3, 5])  # other only in stem 1, with bass
    with pytest.raises(UserError, match="the pool of 'other' has no stem labelled with it alone"):
        SourceMixer(store, pools, RATE // 4, 0.0, 0, 0, [s.labels for s in TABLE])


class _Fixed(torch.nn.Module):
    """A 'separator' that returns given estimates (and a parameter to take gradients through)."""

    def __init__(self, estimate: torch.Tensor) -> None:
        super().__init__()
        self.scale = torch.nn.Parameter(torch.ones(()))
        self.estimate = estimate

    def forward(self, mix: torch.Tensor) -> torch.Tensor:
        return self.scale * self.estimate


def test_a_group_is_scored_on_the_sum_of_its_estimates_however_it_is_split() -> None:
    torch.manual_seed(0)
    stem, drums, vocals = torch.randn(3, 1, 1, 100)
    sources = torch.stack([stem, drums, torch.zeros_like(stem), vocals], 1)  # bass+other stem in the bass slot
    groups = torch.eye(4)[None].clone()
    groups[0, 0, 2], groups[0, 2, 2] = 1.0, 0.0
    for share in (0.0, 0.3, 1.0):  # any split of the stem between bass and other estimates is right
        estimate = torch.stack([share * stem, drums, (1 - share) * stem, vocals], 1)
        model = Grouped(_Fixed(estimate), groups)
        with torch.no_grad():
            assert float(losses.l1(model, stem, group(groups, sources))) == pytest.approx(0.0, abs=1e-6)
            assert float(losses.l1(_Fixed(estimate), stem, sources)) > 0 or share == 1.0
    wrong = torch.stack([stem, drums, 0.5 * vocals, vocals], 1)  # vocals leaking into other is still wrong
    with torch.no_grad():
        assert float(losses.l1(Grouped(_Fixed(wrong), groups), stem, group(groups, sources))) > 0


def test_empty_slots_neither_count_nor_leave_under_truncation() -> None:
    terms = torch.tensor([[1.0, 2.0], [0.0, 4.0], [3.0, 6.0], [9.0, 8.0], [2.0, 1.0]])
    active = torch.tensor([[True, True], [False, True], [True, True], [True, True], [True, True]])
    value = truncated_mean(terms, 0.75, active=active)  # bass: 4 terms, 1 leaves (9); drums: 5 terms, 1 leaves (8)
    assert float(value) == pytest.approx((1 + 3 + 2 + 2 + 4 + 6 + 1) / 7)
    full = torch.ones_like(active)
    assert float(truncated_mean(terms, 0.75, active=full)) == pytest.approx(float(truncated_mean(terms, 0.75)))


TINY = {
    "demucs": {"channels": 4, "depth": 4, "nfft": 1024},
    "xumx": {"n_fft": 256, "n_hop": 64, "hidden_size": 16, "nb_layers": 1},
}


@pytest.mark.parametrize("name", ["demucs", "xumx"])
@pytest.mark.parametrize("truncate", [None, 0.75])
def test_a_separator_trains_on_partial_pools_and_validates_on_single_ones(tmp_path: Path, name: str, truncate) -> None:
    table, paths = [], []
    for song in range(6):  # six songs of four stems; two stems hold two classes
        for c in CLASSES:
            labels = {(0, "bass"): "bass+other", (1, "vocals"): "drums+vocals"}.get((song, c), c)
            stem = LabelledStem(f"song{song}", c, str(tmp_path / f"{song}{c}.wav"), frozenset(labels.split("+")))
            audio = sum((tone(k, seed=song) for k in stem.labels), np.zeros((1, RATE), dtype=np.float32))
            write_audio(stem.path, audio, RATE)
            table.append(stem)
            paths.append(stem.path)
    store = StemStore(paths, RATE, 1, -60.0)
    block = parse_params(merge_into(_params(), {"separators": {name: {"train": {"truncate_quantile": truncate}}}}))
    tp = dataclasses.replace(
        block.separators[name].train, segment_seconds=0.25, val_fraction=0.34, val_examples=4, batch_size=4
    )
    task = SeparatorTraining(name, model_kwargs(TINY[name], RATE, 1, 0.25), table, store, "partial", tp, 1, "x")
    val_songs = {table[i].song for p in build_pools(table, "single", list(range(24))).values() for i in p} - {
        table[i].song for p in task.pools.values() for i in p
    }
    assert len(val_songs) == 2 and task.val_sources.shape == (4, 4, 1, RATE // 4)
    batch = task.source.batch(4)
    assert len(batch) == 3, "partial pools render the groups with every batch"
    torch.manual_seed(0)
    model = task.build()
    value = task.loss(model, *batch)
    value.backward()
    assert torch.isfinite(value) and any(p.grad is not None and p.grad.abs().sum() > 0 for p in model.parameters())


class _AllIn(torch.nn.Module):
    """A 'separator' that puts the whole mixture in one class."""

    def __init__(self, cls: str) -> None:
        super().__init__()
        self.sources, self.samplerate, self.audio_channels, self.segment = list(CLASSES), RATE, 1, 0.5
        self.k = CLASSES.index(cls)
        self.w = torch.nn.Parameter(torch.ones(()))

    def forward(self, mix: torch.Tensor) -> torch.Tensor:
        out = torch.zeros(mix.shape[0], 4, *mix.shape[1:])
        out[:, self.k] = mix
        return out


def test_the_filter_leaves_out_the_stems_the_separator_puts_elsewhere(tmp_path: Path) -> None:
    from selfrefine.filtering import filter_scores, filtered, stem_scores

    stems, paths = [], []
    for i, labels in enumerate(["bass", "drums", "bass+drums", "", "bass"]):
        path = tmp_path / f"{i}.wav"
        audio = tone("bass", seed=i) if labels else np.zeros((1, RATE), dtype=np.float32)
        write_audio(path, audio, RATE)
        stems.append(LabelledStem(f"s{i}", "bass", str(path), frozenset(t for t in labels.split("+") if t)))
        paths.append(str(path))
    store = StemStore(paths, RATE, 1, -60.0)
    scores = stem_scores(_AllIn("bass"), store, stems, overlap=0.25)
    assert scores[0] > 30 and scores[4] > 30 and scores[2] > 30, "all of it where the labels say"
    assert scores[1] == pytest.approx(0.0, abs=1e-3), "nothing where the label says: 0 dB"
    assert np.isnan(scores[3]), "no label: not scored"
    kept = filtered(stems, scores, threshold_db=5.0)
    assert [sorted(s.labels) for s in kept] == [["bass"], [], ["bass", "drums"], [], ["bass"]]
    truth = [frozenset({"bass"})] * 3 + [frozenset()] + [frozenset({"bass"})]
    summary = filter_scores(stems, kept, truth)
    assert summary["removed"] == 1 and summary["removed_wrong"] == 1
    assert summary["wrong_before"] == 2 and summary["wrong_removed"] == 1
    assert summary["label_accuracy_before"] == 0.5 and summary["label_accuracy_after"] == pytest.approx(2 / 3)


def test_a_filter_that_empties_a_pool_is_refused_with_the_threshold_that_would_keep_one() -> None:
    from selfrefine.data.labels import build_pools
    from selfrefine.errors import UserError
    from selfrefine.filtering import check_pools, filtered

    stems = [LabelledStem(f"s{i}", "x", f"{i}.wav", frozenset({c})) for i, c in enumerate(["bass", "drums", "drums"])]
    scores = np.array([4.0, 0.837, -2.0])
    every = list(range(len(stems)))
    before = build_pools(stems, "single", every)
    check_pools(before, build_pools(filtered(stems, scores, 0.8), "single", every), scores, 0.8, "filter@demucs")
    after = build_pools(filtered(stems, scores, 1.0), "single", every)
    assert after["bass"] == [0] and after["drums"] == []
    with pytest.raises(
        UserError, match=r"no drums stem scores filter.threshold_db=1 dB .*best: 0.84 dB.* at most 0.83"
    ):
        check_pools(before, after, scores, 1.0, "filter@demucs")


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ({"filter": {"models": ["tasnet"]}}, "filter.models: 'tasnet' has no block"),
        (
            {"filter": {"models": ["demucs"], "labels": "filtered_demucs"}},
            "filter.labels: 'filtered_demucs' is not a table",
        ),
        ({"separate": {"labels": "filtered_demucs"}}, "separate.labels: 'filtered_demucs' is not a label table"),
    ],
)
def test_filter_params_name_what_they_filter(override: dict, message: str) -> None:
    with pytest.raises(ParamsError, match=message):
        parse_params(merge_into(_params(), override))
    ok = merge_into(_params(), {"filter": {"models": ["demucs"]}, "separate": {"labels": "filtered_demucs"}})
    assert parse_params(ok).label_tables()[-1] == "filtered_demucs"


@pytest.mark.parametrize("name", ["pools.json", "pools-sampled.json"])
def test_the_committed_pools_results_and_their_section_are_those_of_the_kept_scores(name: str) -> None:
    import importlib.util
    import json

    from selfrefine.config import load_params
    from selfrefine.outputs import read_csv

    spec = importlib.util.spec_from_file_location("pools_benchmark", ROOT / "benchmarks" / "pools.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    result = json.loads((ROOT / "benchmarks/results" / name).read_text())
    assert json.loads((ROOT / result["folder"] / "compare.json").read_text())["world"] == result["world"]
    for model, part in result["models"].items():
        rows = read_csv(ROOT / result["folder"] / f"{model}.csv")
        assert bench.test_contrasts(rows, result["against"]) == part["test"], f"{model}: contrasts of other scores"
    mark = result["section"]
    section = (
        (ROOT / "docs/results.md").read_text().split(f"<!-- {mark}:start -->\n")[1].split(f"<!-- {mark}:end -->")[0]
    )
    assert section == bench.markdown(result, dict(load_params(ROOT / "params.yaml").compare.aliases))


def test_only_options_that_keep_a_tables_validation_examples_are_paired_with_its_run() -> None:
    import importlib.util

    spec = importlib.util.spec_from_file_location("pools_benchmark", ROOT / "benchmarks" / "pools.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    assert bench.pairs_with_table("refined_2@separate.keep=0.8")
    assert bench.pairs_with_table("noisy@separators.demucs.train.truncate_quantile=0.8@separate.pool=partial")
    assert not bench.pairs_with_table("refined_2"), "the table's own run"
    assert not bench.pairs_with_table("refined_2@refine.later_rounds=average"), "other labels, other examples"
    assert not bench.pairs_with_table("filtered_demucs@filter.models=[demucs]")
    assert not bench.pairs_with_table("refined_2@separate.keep=0.8@refine.threshold=0.9")
