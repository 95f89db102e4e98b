"""The fault drills of benchmarks/drills.py, smaller: damaged audio through the index, damaged params files."""

from __future__ import annotations

import importlib.util

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
