"""The `selfrefine` command and the stage scripts: help, and one-line errors with a non-zero exit."""

import subprocess
import sys
from pathlib import Path

import pytest
import typer
import yaml
from typer.testing import CliRunner

from selfrefine.cli import app

from conftest import ROOT

STAGES = list(yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"])
"""The pipeline's stages, as dvc.yaml names them (``validate``, ``generate``, ..., ``evaluate``)."""


HELP = """
import contextlib, io, runpy, sys
for stage in sys.argv[1:]:
    sys.argv = [stage, "--help"]
    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.suppress(SystemExit):
        runpy.run_module(f"selfrefine.stages.{stage}", run_name="__main__")
    print(f"=== {stage}\\n{out.getvalue()}")
"""


def test_every_stage_script_has_help() -> None:
    # one interpreter runs every stage module as `python -m` would (imports once: seconds, not a minute)
    proc = subprocess.run([sys.executable, "-c", HELP, *STAGES], cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    helps = dict(part.split("\n", 1) for part in proc.stdout.split("=== ")[1:])
    assert list(helps) == STAGES
    for stage, text in helps.items():
        assert "--params" in text and f"selfrefine.stages.{stage}" in text, stage
    for stage in ("classify", "train"):
        assert "--nproc" in helps[stage], "training stages take launch.nproc"


def _commands() -> dict:
    return typer.main.get_command(app).commands


def test_every_stage_is_a_command_and_every_help_renders_whole() -> None:
    commands = _commands()
    assert set(STAGES) <= set(commands), f"stages with no command: {sorted(set(STAGES) - set(commands))}"
    top = CliRunner().invoke(app, ["--help"], env={"COLUMNS": "200"})
    assert top.exit_code == 0
    summary = " ".join(top.output.split("Options")[0].split())
    assert summary.rstrip(" │╭─").endswith("."), f"the summary ends mid-sentence: {summary[-80:]!r}"
    for name in commands:
        assert name in summary, f"the summary does not name {name}"
    for name, command in commands.items():
        result = CliRunner().invoke(app, [name, "--help"], env={"COLUMNS": "200"})
        assert result.exit_code == 0, (name, result.output)
        assert "``" not in result.output and ":func:" not in result.output, f"{name}: reStructuredText in its help"
        text = (command.help or "").strip()
        assert text and "\n" not in text and text.endswith("."), f"{name}: help is not one whole sentence: {text!r}"


def test_the_corrupt_help_names_every_noise_kind() -> None:
    import dataclasses

    from selfrefine.config import NoiseKinds

    text = _commands()["corrupt"].help
    assert all(kind.name in text for kind in dataclasses.fields(NoiseKinds)), text


def test_the_training_commands_take_nproc_and_hand_it_to_torchrun(monkeypatch, tmp_path: Path) -> None:
    from selfrefine.stages import entry

    calls = []
    monkeypatch.setattr(entry, "torchrun", lambda n, module, argv: calls.append((n, module, argv)) or 0)
    params = str(ROOT / "params.yaml")
    assert CliRunner().invoke(app, ["classify", "2", "--nproc", "3", "--params", params]).exit_code == 0
    assert CliRunner().invoke(app, ["train", "xumx", "--nproc", "2", "--params", params]).exit_code == 0
    assert calls == [
        (3, "selfrefine.stages.classify", ["2", "refined_1", "--params", params]),
        (2, "selfrefine.stages.train", ["xumx", "--params", params]),
    ]
    assert CliRunner().invoke(app, ["train", "xumx", "--nproc", "0", "--params", params]).exit_code == 2


def test_bad_params_exit_1_with_one_line(tmp_path: Path) -> None:
    params = tmp_path / "params.yaml"
    params.write_text((ROOT / "params.yaml").read_text().replace("  rate: 0.3", "  rat: 0.3"))
    result = CliRunner().invoke(app, ["corrupt", "--params", str(params)])
    assert result.exit_code == 1
    lines = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert lines == [f"error: {params}: noise.rat: unknown key; did you mean 'rate'?"]


def test_bad_data_exit_1_without_partial_output(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    params = tmp_path / "params.yaml"
    params.write_text((ROOT / "params.yaml").read_text().replace("root: data/generated", f"root: {tmp_path / 'nope'}"))
    result = CliRunner().invoke(app, ["index", "--params", str(params)])
    assert result.exit_code == 1 and f"{tmp_path / 'nope'}/train: folder missing; point data.root" in result.output
    assert not (tmp_path / "data").exists() and not (tmp_path / "metrics").exists()


def test_unknown_round_and_model(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(app, ["classify", "3", "--params", str(ROOT / "params.yaml")])
    assert result.exit_code == 1 and "unknown round '3'; refine.rounds has 1, 2, clean" in result.output
    result = CliRunner().invoke(app, ["train", "tasnet", "--params", str(ROOT / "params.yaml")])
    assert result.exit_code == 1 and "separators.tasnet: no such block in params.yaml" in result.output
    assert not (tmp_path / "timings").exists(), "a failed stage leaves no timing record"


@pytest.mark.parametrize(
    ("command", "message"),
    [
        (["corrupt"], "data/index.csv: missing; run the index stage first (dvc repro index)"),
        (["classify", "1"], "data/labels/noisy.csv: missing; run the corrupt stage first (dvc repro corrupt)"),
        (["refine", "2"], "data/labels/refined_1.csv: missing; run the refine@1 stage first (dvc repro refine@1)"),
        (["train", "demucs"], "data/labels/refined_2.csv: missing; run the refine@2 stage first (dvc repro refine@2)"),
        (["evaluate", "xumx"], "models/xumx/model.pt: missing; run the train@xumx stage first (dvc repro train@xumx)"),
    ],
)
def test_a_stage_run_before_its_inputs_exist_says_which_stage_to_run_first(
    tmp_path: Path, monkeypatch, command: list[str], message: str
) -> None:
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(app, [*command, "--params", str(ROOT / "params.yaml")])
    assert result.exit_code == 1 and result.output == f"error: {message}\n"
    assert not any(tmp_path.iterdir()), "a stage that cannot start writes nothing"


def test_a_refinement_with_no_classifier_names_its_classify_stage(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "data/labels").mkdir(parents=True)
    (tmp_path / "data/labels/noisy.csv").write_text("song,stem,path,labels\ns,bass,x.wav,bass\n")
    result = CliRunner().invoke(app, ["refine", "1", "--params", str(ROOT / "params.yaml")])
    assert (
        result.output
        == "error: models/classifier/1/model.pt: missing; run the classify@1 stage first (dvc repro classify@1)\n"
    )


def test_check_validates_model_blocks_the_stages_check_late(tmp_path: Path) -> None:
    params = tmp_path / "params.yaml"
    params.write_text((ROOT / "params.yaml").read_text().replace("      channels: 16", "      chanels: 16"))
    result = CliRunner().invoke(app, ["check", "--params", str(params)])
    assert result.exit_code == 1
    assert f"error: {params}: separators.demucs.model.chanels: unknown key; did you mean 'channels'?" in result.output
    assert CliRunner().invoke(app, ["check", "--params", str(ROOT / "params.yaml")]).exit_code == 0


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        ("    variant: convnext_atto", "    variant: convnext_huge_typo", "Unknown model (convnext_huge_typo)"),
        ("      nfft: 1024", "      nfft: 2000", "separators.demucs.model: HDemucs fails on a "),
    ],
)
def test_check_builds_and_runs_each_model_so_values_its_model_rejects_stop_there(
    tmp_path: Path, old: str, new: str, message: str
) -> None:
    params = tmp_path / "params.yaml"
    text = (ROOT / "params.yaml").read_text()
    assert old in text
    params.write_text(text.replace(old, new))
    result = CliRunner().invoke(app, ["check", "--params", str(params)])
    assert result.exit_code == 1 and message in result.output and "Traceback" not in result.output, result.output
    assert len(result.output.strip().splitlines()) == 1


@pytest.mark.parametrize("damaged", ["dvc.lock", ".dvc/tmp/rwlock"])
def test_check_names_a_dvc_file_a_killed_dvc_command_cut_short_and_its_remedy(tmp_path: Path, damaged: str) -> None:
    params = tmp_path / "params.yaml"
    params.write_text((ROOT / "params.yaml").read_text())
    lock = (ROOT / "dvc.lock").read_text()
    (tmp_path / "dvc.lock").write_text(lock)
    (tmp_path / ".dvc/tmp").mkdir(parents=True)
    (tmp_path / ".dvc/tmp/rwlock").write_text('{"read": {}, "write": {}}')
    assert CliRunner().invoke(app, ["check", "--params", str(params)]).exit_code == 0, "whole files pass"
    whole = (tmp_path / damaged).read_text()
    # where a kill during DVC's write leaves it: mid-entry (a cut that leaves valid YAML and schema DVC reads too)
    cut = whole.index("- path:", len(whole) // 2) + 2 if damaged == "dvc.lock" else len(whole) // 2
    (tmp_path / damaged).write_text(whole[:cut])
    result = CliRunner().invoke(app, ["check", "--params", str(params)])
    assert result.exit_code == 1 and len(result.output.strip().splitlines()) == 1, result.output
    remedy = "git checkout dvc.lock" if damaged == "dvc.lock" else "remove it"
    assert f"error: {tmp_path / damaged}: cut short" in result.output and remedy in result.output
