"""dvc.yaml declares exactly the code each stage runs: its module's import closure, no more, no less."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from dvc.repo import Repo

from selfrefine.models.registry import SEPARATORS, separators

from closure import import_closure
from conftest import ROOT


def _stages() -> list:
    return list(Repo(str(ROOT)).index.stages)


def _code(stage) -> set[str]:
    """The stage's python modules: the one its cmd runs, plus the separator its key names (loaded by name)."""
    match = re.fullmatch(r"PYTHONPATH=src python -m (selfrefine\.stages\.\w+)(.*)", stage.cmd)
    assert match, f"{stage.name}: cmd {stage.cmd!r} does not run a stage module"
    args = match.group(2).split()
    loaded = [f"{SEPARATORS}.{a}" for a in args[:1] if a in separators()]
    return import_closure(match.group(1), *loaded)


@pytest.mark.parametrize("stage", _stages(), ids=lambda s: s.addressing)
def test_declared_code_deps_equal_the_import_closure(stage) -> None:
    declared = {d.def_path for d in stage.deps if d.def_path.startswith("src/")}
    actual = _code(stage)
    assert declared == actual, (
        f"{stage.name}: declared but not imported {sorted(declared - actual)}; "
        f"imported but not declared {sorted(actual - declared)}"
    )


def test_no_stage_depends_on_a_face() -> None:
    faces = {"src/selfrefine/cli.py", "src/selfrefine/audit.py", "src/selfrefine/separate.py"}
    for stage in _stages():
        code = _code(stage)
        assert not faces & code, stage.name
        assert not any(f.startswith("src/selfrefine/experiments/") for f in code), stage.name


def test_data_stages_import_no_model_code() -> None:
    for stage in _stages():
        if stage.name in ("validate", "generate", "corrupt", "index"):
            assert not any("/models/" in f or "/training/" in f for f in _code(stage)), stage.name


@pytest.mark.parametrize("stage", _stages(), ids=lambda s: s.addressing)
def test_every_stage_can_be_restored_from_the_run_cache(stage) -> None:
    """DVC saves no run-cache entry for a stage with a plain uncached out (``stage.run``: ``no_cache_outs``), so
    a shared stage of two experiments would be trained twice. Uncached results must be ``metrics:`` or ``plots:``."""
    plain_uncached = [o.def_path for o in stage.outs if not o.use_cache and not (o.is_metric or o.is_plot)]
    assert not plain_uncached, f"{stage.addressing}: declare {plain_uncached} under metrics: or plots:"
    # the rest of DVC's `_can_hash` that does not depend on the workspace (a fresh clone has no data yet)
    assert stage.cmd and stage.deps and stage.outs and not stage.always_changed, stage.addressing
    keyless = [o.def_path for o in stage.outs if o.persist or o.protocol != "local" or not o.is_in_repo]
    assert not keyless, f"{stage.addressing}: persist or external outs {keyless} keep it out of the run cache"


def test_a_stage_runs_the_code_of_the_copy_it_runs_in(tmp_path) -> None:
    """A queued experiment runs in its own copy (.dvc/tmp/exps/...); its stages must import that copy's code,
    which DVC hashed as their deps, not the checkout the venv's editable install points at."""
    stage = next(s for s in _stages() if s.name == "validate")
    shutil.copytree(ROOT / "src", tmp_path / "src", ignore=shutil.ignore_patterns("__pycache__"))
    (tmp_path / "src/selfrefine/stages/validate.py").write_text("import selfrefine\nprint(selfrefine.__file__)\n")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}"
    done = subprocess.run(stage.cmd, shell=True, cwd=tmp_path, env=env, capture_output=True, text=True, check=True)
    assert Path(done.stdout.strip()).resolve() == (tmp_path / "src/selfrefine/__init__.py").resolve(), done.stdout
