"""The fault drills of benchmarks/drills.py, smaller: damaged audio through the index, damaged params files."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from conftest import ROOT


def _drills():
    spec = importlib.util.spec_from_file_location("drills", ROOT / "benchmarks" / "drills.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_damaged_audio_is_accepted_skipped_or_stopped_with_one_line_naming_it() -> None:
    result = _drills().fuzz_audio(40, seed=7, stage_runs=1)
    assert result["tracebacks"] == 0 and result["survived"] == result["tried"] == 40, result["failures"]
    assert result["stage"] == {"tried": 1, "survived": 1, "failures": []}
    assert result["outcomes"].get("skipped", 0) and result["outcomes"].get("stopped", 0), "both modes were drilled"


def test_damaged_params_are_valid_or_one_line() -> None:
    result = _drills().fuzz_params(80, seed=7)
    assert result["tracebacks"] == 0 and result["survived"] == result["tried"] == 80, result["failures"]
    assert result["outcomes"]["one_line"] > 40


def test_a_full_disk_is_one_line_naming_the_output_and_leaves_nothing_half_written(tmp_path, monkeypatch, capsys):
    """A write that finds the disk full (ENOSPC; torch's own writer would raise a bare RuntimeError) stops the
    stage with one line naming the output it was writing, and neither it nor its temporary file is left."""
    import errno

    import torch

    from selfrefine.outputs import write_torch
    from selfrefine.stages.entry import run_stage

    out = tmp_path / "models" / "model.pt"
    real_write = Path.write_bytes

    def full(self, data):  # the disk fills half-way through the file
        real_write(self, bytes(data)[: len(data) // 2])
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(Path, "write_bytes", full)
    monkeypatch.chdir(tmp_path)
    code = run_stage("train_x", lambda params: write_torch(out, {"w": torch.zeros(1000)}), ROOT / "params.yaml")
    lines = capsys.readouterr().err.strip().splitlines()
    assert code == 1 and len(lines) == 1, lines
    assert lines[0].startswith("error: no space left on the device writing ") and str(out) in lines[0], lines
    assert not any(out.parent.iterdir()), list(out.parent.iterdir())
    assert not (tmp_path / "timings").exists()
