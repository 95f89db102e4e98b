import dataclasses
from pathlib import Path

import pytest
import yaml

from selfrefine.config import ParamsError, load_params, merge_into, parse_params
from selfrefine.models.registry import ModelError, check_block, loss

from conftest import ROOT


def _params() -> dict:
    return yaml.safe_load((ROOT / "params.yaml").read_text())


def test_params_yaml_and_every_profile_validate() -> None:
    params = load_params(ROOT / "params.yaml")
    assert params.refine.threshold == 0.5 and params.separate.labels == "refined_2"
    for profile in sorted((ROOT / "profiles").glob("*.yaml")):
        parse_params(merge_into(_params(), yaml.safe_load(profile.read_text())), profile.name)


def _leaves(tree: dict) -> set[str]:
    return {k for key, value in tree.items() for k in (_leaves(value) if isinstance(value, dict) else {str(key)})}


@pytest.mark.parametrize("name", sorted(p.stem for p in (ROOT / "profiles").glob("*.yaml")))
def test_a_profile_changes_only_the_lines_it_sets(tmp_path: Path, name: str) -> None:
    from selfrefine.cli import apply_profile

    params = tmp_path / "params.yaml"
    before = (ROOT / "params.yaml").read_text().splitlines()
    params.write_text("\n".join(before) + "\n")
    apply_profile(name, params)
    after = params.read_text().splitlines()
    assert len(after) == len(before)  # no line folded, no comment lost
    keys = _leaves(yaml.safe_load((ROOT / "profiles" / f"{name}.yaml").read_text()))
    changed = [b for a, b in zip(before, after, strict=True) if a != b]
    assert changed and all(line.split(":")[0].strip().strip("-\"' ") in keys for line in changed), changed


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ({"refine": {"treshold": 0.5}}, "refine.treshold: unknown key; did you mean 'threshold'?"),
        ({"noise": {"rate": 1.5}}, "noise.rate: 1.5 is out of range; expected in [0, 1]"),
        ({"noise": {"rate": "high"}}, "noise.rate: expected float, got 'high'"),
        (
            {"separate": {"labels": "refined"}},
            "separate.labels: 'refined' is not a label table of this pipeline; use one of noisy, clean, refined_1, refined_2, refined_clean",
        ),
        ({"separate": {"labels": "refined_3"}}, "separate.labels: 'refined_3' is not a label table"),
        (
            {"separate": {"models": ["demucs", "tasnet"]}},
            "separate.models: 'tasnet' has no block; add separators.tasnet",
        ),
        (
            {"separators": {"demucs": {"train": {"step": 3}}}},
            "separators.demucs.train.step: unknown key; did you mean 'steps'?",
        ),
        (
            {"refine": {"rounds": {"3": "refined_4"}}},
            "refine.rounds.3: 'refined_4' is not a label table before this round; use one of noisy, clean, refined_1, refined_2, refined_clean",
        ),
        (
            {"refine": {"rounds": {"1": "refined_2"}}},
            "refine.rounds.1: 'refined_2' is not a label table before this round",
        ),
        ({"refine": {"rounds": {3: "noisy"}}}, "refine.rounds: round 3 must be quoted"),
        (
            {"data": {"truth": False}, "noise": {"rate": 0}, "separate": {"labels": "refined_clean"}},
            "separate.labels: 'refined_clean' needs ground truth but data.truth is false",
        ),
        ({"refine": {"threshold": 1.2}}, "refine.threshold: 1.2 is out of range"),
        ({"refine": {"threshold": "auto"}}, "refine.threshold: 'auto' is out of range"),
        ({"audio": {"channels": 3}}, "audio.channels: 3 is out of range; expected 1 or 2"),
        ({"noise": {"kinds": {"swap": 0, "merge": 0}}}, "noise.kinds: all weights are 0"),
        ({"data": {"truth": False}}, "noise.rate: must be 0 when data.truth is false"),
        ({"sed": 1}, "sed: unknown key; did you mean 'seed'?"),
        ({"refine": {"folds": 0}}, "refine.folds: 0 is out of range; expected an integer 1..20"),
    ],
)
def test_bad_params_give_one_line_errors(override: dict, message: str) -> None:
    with pytest.raises(ParamsError) as err:
        parse_params(merge_into(_params(), override))
    assert message in str(err.value), str(err.value)
    assert "\n" not in str(err.value)


def test_ints_are_accepted_as_floats_and_missing_file_is_clear(tmp_path: Path) -> None:
    params = parse_params(merge_into(_params(), {"noise": {"rate": 0}, "refine": {"threshold": 0.9}}))
    assert params.noise.rate == 0.0 and params.refine.threshold == 0.9
    with pytest.raises(ParamsError, match="not found"):
        load_params(tmp_path / "params.yaml")
    (tmp_path / "params.yaml").write_text("a: [")
    with pytest.raises(ParamsError, match="invalid YAML"):
        load_params(tmp_path / "params.yaml")


@pytest.mark.parametrize(("value", "parsed"), [(0.9, 0.9), (0.5, 0.5), ("adaptive", "adaptive")])
def test_threshold_parsing(value, parsed) -> None:
    assert parse_params(merge_into(_params(), {"refine": {"threshold": value}})).refine.threshold == parsed


@pytest.mark.parametrize("value", ["auto", 0, 1.0, -0.1, None, "0.5"])
def test_bad_thresholds(value) -> None:
    with pytest.raises(ParamsError, match="refine.threshold: .*(out of range|expected)"):
        parse_params(merge_into(_params(), {"refine": {"threshold": value}}))


@pytest.mark.parametrize(
    ("name", "block", "message"),
    [
        ("demucs", {"chanels": 8}, "separators.demucs.model.chanels: unknown key; did you mean 'channels'?"),
        ("xumx", {"segment": 2.0}, "separators.xumx.model.segment: set by the pipeline"),
        ("classifier", {"n_mel": 32}, "classifier.model.n_mel: unknown key; did you mean 'n_mels'?"),
        ("tasnet", {}, "unknown separator 'tasnet'; registered: demucs, xumx"),
    ],
)
def test_model_blocks_are_checked_against_their_constructor(name: str, block: dict, message: str) -> None:
    with pytest.raises(ModelError) as err:
        check_block(name, block)
    assert message in str(err.value) and "\n" not in str(err.value)


def test_every_block_and_loss_of_params_yaml_is_valid() -> None:
    params = load_params(ROOT / "params.yaml")
    check_block("classifier", params.classifier.model)
    for name, block in params.separators.items():
        check_block(name, block.model)
        loss(name, block.train.loss)


def test_a_round_chain_is_traced_to_the_index_table() -> None:
    params = parse_params(merge_into(_params(), {"refine": {"rounds": {"3": "refined_2"}}}))
    assert params.refine.chain("3") == ["1", "2", "3"]
    assert params.refine.root("refined_3") == "noisy" and params.refine.root("refined_clean") == "clean"
    assert params.label_tables() == [
        "noisy",
        "clean",
        "refined_1",
        "refined_2",
        "refined_clean",
        "refined_3",
        "selected",
    ]
    assert params.refine.root("selected") == "clean"


def test_config_imports_no_torch() -> None:
    import subprocess
    import sys

    code = "import sys, selfrefine.config; assert 'torch' not in sys.modules, 'torch imported'"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_a_single_noise_kind_alone_is_valid_for_every_kind() -> None:
    # the noise study sets each kind alone (weight 1, the others 0); foreign alone once failed the sum check
    from selfrefine.config import NoiseKinds

    base = yaml.safe_load((ROOT / "params.yaml").read_text())
    for kind in (f.name for f in dataclasses.fields(NoiseKinds)):
        weights = {f.name: float(f.name == kind) for f in dataclasses.fields(NoiseKinds)}
        assert getattr(parse_params({**base, "noise": {**base["noise"], "kinds": weights}}).noise.kinds, kind) == 1
