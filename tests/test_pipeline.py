"""End to end: the real dvc.yaml on the smoke profile, in a temporary copy of the repository."""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import ROOT

pytestmark = pytest.mark.slow


def _run(repo: Path, *args: str, ok: bool = True) -> subprocess.CompletedProcess:
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    proc = subprocess.run(args, cwd=repo, env=env, capture_output=True, text=True)
    if ok and proc.returncode != 0:
        raise AssertionError(f"{' '.join(args)} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return proc


def _ran(proc: subprocess.CompletedProcess) -> set[str]:
    return set(re.findall(r"Running stage '([^']+)'", proc.stdout + proc.stderr))


def _metrics(repo: Path) -> dict[str, object]:
    return {str(p.relative_to(repo)): json.loads(p.read_text()) for p in sorted((repo / "metrics").rglob("*.json"))}


def _numbers(value: object):
    if isinstance(value, dict):
        for v in value.values():
            yield from _numbers(v)
    elif isinstance(value, list):
        for v in value:
            yield from _numbers(v)
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        yield value


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A git+DVC copy of the project with the smoke profile applied and committed."""
    repo = tmp_path_factory.mktemp("pipeline")
    files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard"], cwd=ROOT, capture_output=True,
                           text=True, check=True).stdout.split()
    for name in files:
        if name.startswith(("tests/", "data/", "metrics/", "plots/", "dvclive/")) or name == "dvc.lock":
            continue
        if (ROOT / name).is_file():
            (repo / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, repo / name)
    _run(repo, "git", "init", "-q")
    _run(repo, "git", "config", "user.name", "selfrefine tests")
    _run(repo, "git", "config", "user.email", "tests@selfrefine.invalid")
    _run(repo, "selfrefine", "profile", "smoke")
    _run(repo, "git", "add", "-A")
    _run(repo, "git", "commit", "-qm", "smoke profile")
    return repo


def test_repro_builds_everything_then_reruns_nothing(repo: Path) -> None:
    first = _run(repo, "dvc", "repro")
    assert {"generate", "corrupt", "index", "classify@1", "refine@2", "classify@clean", "train_demucs",
            "train_xumx", "evaluate"} <= _ran(first)
    metrics = _metrics(repo)
    for name in ("classifier/1.json", "classifier/2.json", "refine/2.json", "separation/demucs.json",
                 "separation/xumx.json", "train/xumx.json", "noise.json", "index.json"):
        assert f"metrics/{name}" in metrics
    assert all(math.isfinite(v) for v in _numbers(metrics["metrics/separation/demucs.json"]["global_sdr"]))
    assert metrics["metrics/noise.json"]["rate"] == pytest.approx(0.3, abs=0.05)
    for png in ("plots/separation/sdr.png", "plots/refine/2/sweep.png", "plots/train/demucs/curves.png"):
        assert (repo / png).stat().st_size > 1000
    second = _run(repo, "dvc", "repro")
    assert _ran(second) == set()
    _run(repo, "git", "add", "-A")
    _run(repo, "git", "commit", "-qm", "smoke run")


def test_compare_queues_runs_and_tabulates_label_tables(repo: Path) -> None:
    proc = _run(repo, "selfrefine", "compare", "--labels", "noisy,clean")
    table = json.loads((repo / "metrics" / "compare.json").read_text())
    for model in ("demucs", "xumx"):
        assert set(table["global_sdr"][model]) == {"noisy", "clean"}
        assert all(math.isfinite(v) for v in table["global_sdr"][model]["clean"].values())
    assert "| xumx | clean |" in (repo / "metrics" / "compare.md").read_text()
    readme = (repo / "README.md").read_text()
    assert "| demucs | noisy |" in readme.split("<!-- results:start -->")[1].split("<!-- results:end -->")[0]
    assert (repo / "plots" / "compare.png").stat().st_size > 1000
    assert "compare: queued" in proc.stderr
    _run(repo, "git", "checkout", "README.md")


def test_threshold_experiment_reruns_only_the_refinement(repo: Path) -> None:
    before = _metrics(repo)
    proc = _run(repo, "dvc", "exp", "run", "-S", "refine.threshold=adaptive")
    assert _ran(proc) == {"refine@1", "classify@2", "refine@2", "refine@clean"}
    after = _metrics(repo)
    assert after["metrics/refine/1.json"]["thresholds"] != before["metrics/refine/1.json"]["thresholds"]
    assert after["metrics/classifier/1.json"] == before["metrics/classifier/1.json"]
    assert after["metrics/separation/xumx.json"] == before["metrics/separation/xumx.json"], (
        "the smoke profile trains separators on the noisy labels, which no threshold changes"
    )
    diff = _run(repo, "dvc", "metrics", "diff", "--json")
    changed = json.loads(diff.stdout)
    assert any(path.startswith("metrics/refine") for path in changed)
    assert not any(path.startswith(("metrics/separation", "metrics/classifier/1")) for path in changed)
    proc = _run(repo, "dvc", "exp", "run", "-S", "refine.threshold=0.9")
    assert _ran(proc) == {"refine@1", "classify@2", "refine@2", "refine@clean"}
    assert _metrics(repo)["metrics/refine/1.json"]["thresholds"]["bass"] == 0.9


def test_noise_rate_change_reruns_from_corrupt_but_not_generate(repo: Path) -> None:
    proc = _run(repo, "dvc", "exp", "run", "-S", "noise.rate=0.5", "index")
    assert _ran(proc) == {"corrupt", "index"}
    assert _metrics(repo)["metrics/noise.json"]["rate"] == pytest.approx(0.5, abs=0.05)


def test_a_typo_in_a_param_fails_with_the_nearest_key(repo: Path) -> None:
    proc = _run(repo, "dvc", "exp", "run", "-S", "refine.treshold=0.5", ok=False)
    assert proc.returncode != 0 and "Could not override 'refine.treshold'" in proc.stderr
    proc = _run(repo, "dvc", "exp", "run", "-S", "+refine.treshold=0.5", ok=False)
    assert proc.returncode != 0
    assert "refine.treshold: unknown key; did you mean 'threshold'?" in proc.stdout + proc.stderr


def test_a_killed_training_stage_resumes_under_dvc_repro(repo: Path) -> None:
    import signal
    import time

    import yaml

    _run(repo, "git", "checkout", "params.yaml", "dvc.lock")  # the committed smoke run, not earlier experiments
    _run(repo, "dvc", "checkout")
    params = yaml.safe_load((repo / "params.yaml").read_text())
    params["xumx"]["train"].update(steps=400, checkpoint_every=1)
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    checkpoint = repo / "checkpoints" / "train_xumx.pt"
    log = repo / "killed.log"
    proc = subprocess.Popen([sys.executable, "stages/train.py", "xumx"], cwd=repo, env=env,
                            stdout=subprocess.DEVNULL, stderr=log.open("w"))
    deadline = time.monotonic() + 120
    while not checkpoint.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert checkpoint.exists(), f"no checkpoint before the kill:\n{log.read_text()[-2000:]}"
    resumed = _run(repo, "dvc", "repro", "train_xumx")
    assert re.search(r"train-xumx: resuming from step [1-9]", resumed.stdout + resumed.stderr)
    assert not checkpoint.exists()
    assert json.loads((repo / "metrics/train/xumx.json").read_text())["val_loss"] > 0
