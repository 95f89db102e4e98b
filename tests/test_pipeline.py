"""End to end: the real dvc.yaml on the smoke profile.

One session fixture builds the smoke DAG once (``dvc repro`` in a git+DVC copy of the project) and
every test works on its own copy of that built repository, so each test stands alone, in any order.
Stages run the copy's own code (``PYTHONPATH``), so an edit in a copy is what DVC sees and runs.
"""

from __future__ import annotations

import contextlib
import csv
import hashlib
import json
import math
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from filelock import FileLock

from conftest import ROOT

pytestmark = pytest.mark.slow

SEPARATOR_FILE = Path("src/selfrefine/models/separators")


def _env(repo: Path) -> dict[str, str]:
    return {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        "PYTHONPATH": str(repo / "src"),
        "SELFREFINE_DVC_TIMEOUT": "60",  # a dvc exp show that hangs (seen here) costs a minute, not the default 5
    }


def _run(repo: Path, *args: str, ok: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run(args, cwd=repo, env=_env(repo), capture_output=True, text=True)
    if ok and proc.returncode != 0:
        raise AssertionError(f"{' '.join(args)} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return proc


def _ran(proc: subprocess.CompletedProcess) -> set[str]:
    return set(re.findall(r"Running stage '([^']+)'", proc.stdout + proc.stderr))


def _stale(repo: Path) -> set[str]:
    """Stages ``dvc status`` reports as changed."""
    status = json.loads(_run(repo, "dvc", "status", "--json").stdout or "{}")
    return {name.split(":")[-1] for name in status}


def _stages(repo: Path) -> set[str]:
    return {line.split()[0] for line in _run(repo, "dvc", "stage", "list").stdout.splitlines() if line.strip()}


def _metrics(repo: Path) -> dict[str, object]:
    return {str(p.relative_to(repo)): json.loads(p.read_text()) for p in sorted((repo / "metrics").rglob("*.json"))}


def _weights(repo: Path) -> dict[str, dict[str, torch.Tensor]]:
    return {
        str(p.relative_to(repo)): torch.load(p, weights_only=False)["state"]
        for p in sorted((repo / "models").rglob("model.pt"))
    }


def _edit(path: Path, line: str = "# an edit that changes nothing but the file\n") -> None:
    path.write_text(path.read_text() + line)


def _set_params(repo: Path, **changes: dict) -> None:
    """Deep-merge ``changes`` into the copy's params.yaml (a top-level key per keyword)."""
    from selfrefine.config import merge_into

    params = yaml.safe_load((repo / "params.yaml").read_text())
    (repo / "params.yaml").write_text(yaml.safe_dump(merge_into(params, changes), sort_keys=False))


ALL_STAGES = {
    "validate",
    "summarize",
    "generate",
    "corrupt",
    "index",
    "classify@1",
    "classify@2",
    "classify@clean",
    "refine@1",
    "refine@2",
    "refine@clean",
    "select",
    "train@demucs",
    "train@xumx",
    "evaluate@demucs",
    "evaluate@xumx",
}


@pytest.fixture(scope="session")
def built(tmp_path_factory: pytest.TempPathFactory, worker_id: str) -> Path:
    """A git+DVC copy of the project, smoke profile applied, `dvc repro` run and committed.

    Built once per test run: under pytest-xdist the first worker builds it while the others wait (tests
    only read it or copy it), instead of every worker building its own on the same cores.
    """
    if worker_id == "master":  # no xdist
        return _build(tmp_path_factory.mktemp("built"))
    shared = tmp_path_factory.getbasetemp().parent  # this run's folder, above every worker's own
    with FileLock(str(shared / "built.lock")):
        if not (shared / "built" / ".git" / "first-run").exists():
            shutil.rmtree(shared / "built", ignore_errors=True)
            _build(shared / "built")
    return shared / "built"


def _build(repo: Path) -> Path:
    repo.mkdir(parents=True, exist_ok=True)
    files = subprocess.run(
        ["git", "ls-files", "-co", "--exclude-standard"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.split()
    for name in files:
        if name.startswith(("tests/", "data/", "metrics/", "plots/", "dvclive/", "timings/")) or name == "dvc.lock":
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
    first = _run(repo, "dvc", "repro")
    (repo / ".git" / "first-run").write_text("\n".join(sorted(_ran(first))))
    _run(repo, "git", "add", "-A")
    _run(repo, "git", "commit", "-qm", "smoke run")
    return repo


@pytest.fixture
def repo(built: Path, tmp_path: Path) -> Path:
    """This test's own copy of the built repository."""
    copy = tmp_path / "repo"
    shutil.copytree(built, copy, symlinks=True)
    return copy


def test_repro_builds_every_stage_then_reruns_nothing(repo: Path) -> None:
    assert set((repo / ".git" / "first-run").read_text().split()) == ALL_STAGES == _stages(repo)
    metrics = _metrics(repo)
    for name in (
        "classifier/1.json",
        "classifier/2.json",
        "refine/2.json",
        "separation/demucs.json",
        "separation/xumx.json",
        "train/xumx.json",
        "noise.json",
        "index.json",
    ):
        assert f"metrics/{name}" in metrics
    assert all(math.isfinite(v) for v in metrics["metrics/separation/demucs.json"]["global_sdr"]["mean"].values())
    assert metrics["metrics/noise.json"]["rate"] == pytest.approx(0.3, abs=0.05)
    for png in ("plots/separation/demucs/sdr.png", "plots/refine/2/sweep.png", "plots/train/demucs/curves.png"):
        assert (repo / png).stat().st_size > 1000
    timing = json.loads((repo / "timings/train_demucs.json").read_text())
    assert timing["stage"] == "train_demucs" and timing["seconds"] >= timing["train"] > 0
    assert _ran(_run(repo, "dvc", "repro")) == set()


def test_editing_a_face_reruns_nothing(repo: Path) -> None:
    for face in ("experiments/compare.py", "experiments/studies.py", "experiments/queue.py", "cli.py"):
        _edit(repo / "src/selfrefine" / face)
    assert _stale(repo) == set()


def test_a_setting_that_cannot_change_a_result_reruns_nothing_but_validation(repo: Path) -> None:
    _set_params(repo, launch={"num_workers": 2})
    assert _stale(repo) == {"validate"}


def test_any_params_change_revalidates_the_file(repo: Path) -> None:
    _set_params(repo, separate={"models": ["demucs"]})
    assert _stale(repo) == {"validate", "summarize"}  # summarize reads separate.models; the rest do not change


def test_editing_xumx_marks_only_its_own_stages(repo: Path) -> None:
    _edit(repo / SEPARATOR_FILE / "xumx.py")
    assert _stale(repo) == {"train@xumx", "evaluate@xumx"}


def test_editing_synth_marks_generate_and_so_everything_after_it(repo: Path) -> None:
    _edit(repo / "src/selfrefine/data/synth.py", "SYNTH_EDIT = 1\n")
    assert _stale(repo) == {"generate"}
    dag = _run(repo, "dvc", "dag", "--md").stdout
    names = dict(re.findall(r'(node\d+)\["([^"]+)"\]', dag))
    edges = [(names[a], names[b]) for a, b in re.findall(r"(node\d+)-->(node\d+)", dag)]
    downstream = {"generate"}
    for _ in edges:
        downstream |= {b for a, b in edges if a in downstream}
    assert downstream == ALL_STAGES - {"validate"}


def test_a_third_round_runs_with_no_code_change(repo: Path) -> None:
    proc = _run(repo, "dvc", "exp", "run", "-S", "+refine.rounds.3=refined_2")
    assert _ran(proc) == {"validate", "classify@3", "refine@3", "summarize"}
    metrics = _metrics(repo)
    assert metrics["metrics/classifier/3.json"]["trained_on"] == "refined_2"
    assert (
        metrics["metrics/refine/3.json"]["label_accuracy_input"]
        == metrics["metrics/refine/2.json"]["label_accuracy_refined"]
    )
    assert (repo / "data/labels/refined_3.csv").is_file()


def test_filtering_is_a_stage_only_when_asked_and_its_table_trains_the_separators(repo: Path) -> None:
    assert not any(s.startswith("filter@") for s in _stages(repo)), "no filtering by default"
    _set_params(
        repo,
        filter={"models": ["demucs"], "labels": "noisy", "threshold_db": -1000.0},  # smoke's 2-step scorer keeps all
        separate={"labels": "filtered_demucs", "models": ["demucs"]},
    )
    proc = _run(repo, "dvc", "repro")
    assert _ran(proc) == {"validate", "filter@demucs", "train@demucs", "evaluate@demucs", "summarize"}
    metrics = _metrics(repo)
    assert metrics["metrics/filter/demucs.json"]["removed"] == 0
    filtered = metrics["metrics/filter/demucs.json"]
    assert filtered["pool_sizes"] == filtered["pool_sizes_before"], "nothing left out: every song's stems pooled"
    trained = metrics["metrics/train/demucs.json"]["pools"]
    assert all(0 < trained[c] < filtered["pool_sizes"][c] for c in trained), "training pools: less the held-out songs"
    assert metrics["metrics/train/demucs.json"]["labels"] == "filtered_demucs"
    with open(repo / "data/labels/filtered_demucs.csv") as f:
        rows = list(csv.DictReader(f))
    assert all(r["filter_sdr"] for r in rows if r["labels"]), "every labelled stem is scored"
    assert (repo / "plots/filter/demucs/scores.png").is_file()
    assert _run(repo, "dvc", "status").stdout.strip().endswith("up to date.")
    _set_params(repo, filter={"threshold_db": 1000.0})  # every stem scores below: every pool would be empty
    proc = _run(repo, "dvc", "repro", "filter@demucs", ok=False)
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert proc.returncode != 0 and len(errors) == 1, proc.stderr[-2000:]
    assert "no bass stem scores filter.threshold_db=1000 dB or more" in errors[0] and "at most" in errors[0]
    assert not (repo / "data/labels/filtered_demucs.csv").exists(), "no table that would empty a pool"


def test_out_of_fold_refinement_gives_each_song_to_the_member_that_never_trained_on_it(repo: Path) -> None:
    from selfrefine import CLASSES
    from selfrefine.data.audio import decode, samples
    from selfrefine.data.labels import read_label_table
    from selfrefine.models.checkpoints import load_checkpoint
    from selfrefine.outputs import read_csv
    from selfrefine.refine import audio_probabilities

    proc = _run(repo, "dvc", "exp", "run", "-S", "refine.folds=3", "refine@1")
    assert _ran(proc) == {"classify@1", "refine@1"}  # a target runs what it depends on, not validate
    metrics = _metrics(repo)
    assert metrics["metrics/refine/1.json"]["folds"] == metrics["metrics/classifier/1.json"]["folds"] == 3
    assert len(metrics["metrics/classifier/1.json"]["validation_noisy_mixtures_per_fold"]) == 3
    model, package = load_checkpoint(repo / "models/classifier/1/model.pt")
    assert package["class"] == "FoldEnsemble" and len(model.members) == 3
    folds = package["provenance"]["fold_songs"]
    songs = sorted({s.song for s in read_label_table(repo / "data/labels/noisy.csv")})
    assert sorted(song for fold in folds for song in fold) == songs  # a partition of the songs
    rows = {(s.song, s.stem): s for s in read_label_table(repo / "data/labels/refined_1.csv")}
    table = {(r["song"], r["stem"]): r for r in read_csv(repo / "data/labels/refined_1.csv")}
    params = yaml.safe_load((repo / "params.yaml").read_text())
    sr = params["audio"]["sample_rate"]
    crop, hop = samples(package["provenance"]["crop_seconds"], sr), samples(params["refine"]["hop_seconds"], sr)
    checked = 0
    for j, fold in enumerate(folds):
        for (song, stem), labelled in rows.items():
            if song not in fold or checked > 6:
                continue
            audio, _ = decode(repo / labelled.path)
            per_member = [
                audio_probabilities(m, audio, crop, hop, "mean", params["data"]["silence_db"], sr)
                for m in model.members
            ]
            if not per_member[j].any():
                continue  # a silent stem: all zeros from every member
            stored = np.array([float(table[(song, stem)][f"p_{c}"]) for c in CLASSES])
            assert np.allclose(stored, per_member[j], atol=1e-4), f"{song}/{stem}: not relabelled by member {j}"
            assert not np.allclose(stored, per_member[(j + 1) % 3], atol=1e-4)
            checked += 1
    assert checked >= 3


def _hashes(repo: Path) -> dict[tuple[str, str], str]:
    """Every stage output's hash in dvc.lock, but the wall-time records and the dvclive logs (timestamped)."""
    lock = yaml.safe_load((repo / "dvc.lock").read_text())["stages"]
    return {
        (name, out["path"]): out["md5"]
        for name, stage in lock.items()
        for out in stage.get("outs", [])
        if not out["path"].startswith(("timings/", "dvclive/"))
    }


def test_the_same_seed_gives_the_same_run_and_another_seed_other_weights(repo: Path, built: Path) -> None:
    # every stage with randomness in it (the data stages are checked by their own seeded unit tests)
    seeded = {"classify@1", "refine@1", "classify@2", "train@demucs", "train@xumx", "evaluate@xumx"}
    assert _ran(_run(repo, "dvc", "repro", "--force", "--single-item", *sorted(seeded))) == seeded
    assert _metrics(repo) == _metrics(built)
    ours, theirs = _hashes(repo), _hashes(built)
    assert ours.keys() == theirs.keys() and len(ours) > 30
    assert {key for key in ours if ours[key] != theirs[key]} == set(), "outputs are not byte-identical"
    ours, theirs = _weights(repo), _weights(built)
    assert ours.keys() == theirs.keys() and len(ours) == 5  # three classifiers, two separators
    for path, state in ours.items():
        for key, tensor in state.items():
            assert torch.equal(tensor, theirs[path][key]), f"{path}: {key} differs"
    _set_params(repo, seed=1)
    _run(repo, "dvc", "repro", "--single-item", "train@demucs", "train@xumx")
    for model in ("models/demucs/model.pt", "models/xumx/model.pt"):
        changed = _weights(repo)[model]
        assert not all(torch.equal(t, theirs[model][k]) for k, t in changed.items()), f"{model}: seed ignored"


def test_noise_rate_change_reruns_from_corrupt_but_not_the_index(repo: Path) -> None:
    truth = repo / "data/noisy/truth.csv"
    before = truth.read_text()
    proc = _run(repo, "dvc", "exp", "run", "-S", "seed=1", "corrupt")  # what compare.vary: pipeline sets per run
    assert _ran(proc) == {"corrupt"}, "a pipeline replicate keeps the songs (generate.seed): no generate, no index"
    after = truth.read_text()
    assert len(after.splitlines()) == len(before.splitlines()) and after != before, "another draw, the same stems"
    proc = _run(repo, "dvc", "exp", "run", "-S", "seed=0", "-S", "noise.rate=0.5", "corrupt")
    assert _ran(proc) == {"corrupt"}  # a target runs only what it depends on; the index has no noise in it
    assert _metrics(repo)["metrics/noise.json"]["rate"] == pytest.approx(0.5, abs=0.05)


def _layout_fixture(repo: Path, layout: str) -> dict:
    """The smoke songs as a user's library in ``layout``, with what real libraries have: FLAC stems,
    mixture files, a stem that cannot be read (skipped by name); and a separate test root."""
    import soundfile as sf

    source = repo / "data/generated"
    library = repo / "library"
    songs = sorted(p.name for p in (source / "train").iterdir())
    lines = ["path,label,song"]
    for n, song in enumerate(songs):
        for stem in sorted((source / "train" / song).iterdir()):
            audio, rate = sf.read(stem, dtype="float32")
            if layout == "songs":
                target = library / song / (stem.stem + (".flac" if n % 2 else ".wav"))
            else:  # csv: takes named anyhow, in per-session folders, labels in the CSV
                target = library / f"session_{n % 3}" / f"take_{n:02d}_{stem.stem[:2]}.flac"
                lines.append(f"{target.relative_to(library)},{stem.stem},{song}")
            target.parent.mkdir(parents=True, exist_ok=True)
            sf.write(target, audio, rate, subtype="FLOAT" if target.suffix == ".wav" else "PCM_24")
        if layout == "songs":
            sf.write(library / song / "mixture.wav", np.zeros(rate, dtype=np.float32), rate)
    if layout == "csv":
        (library / "stems.csv").write_text("\n".join(lines) + "\n")
    bad = next(library.rglob("*.flac"))
    bad.write_bytes(b"fLaC not really")
    shutil.copytree(source / "test", repo / "clean_test")
    return {"root": "library", "layout": layout, "test_root": "clean_test", "on_bad_file": "skip", "bad": str(bad)}


def _files(*roots: Path) -> dict[str, tuple]:
    """Every file under ``roots``: its SHA-256, mode and mtime (ns)."""
    return {
        str(f): (hashlib.sha256(f.read_bytes()).hexdigest(), f.stat().st_mode, f.stat().st_mtime_ns)
        for root in roots
        for f in sorted(root.rglob("*"))
        if f.is_file()
    }


@pytest.mark.parametrize(("layout", "cache"), [("songs", "hardlink"), ("csv", "reflink,copy")])
def test_a_users_library_in_each_layout_runs_the_pipeline(repo: Path, layout: str, cache: str) -> None:
    data = _layout_fixture(repo, layout)
    bad = Path(data.pop("bad"))
    _set_params(repo, data=data)
    _run(repo, "dvc", "config", "--local", "cache.type", cache)
    before = _files(repo / "library", repo / "clean_test")
    # the smoke profile trains separators on the noisy labels: from the library to a test SDR in four stages
    proc = _run(repo, "dvc", "repro", "evaluate@demucs")
    assert _ran(proc) == {"index", "corrupt", "train@demucs", "evaluate@demucs"}
    assert _files(repo / "library", repo / "clean_test") == before, "the user's files: bytes, mode and mtime kept"
    index = _metrics(repo)["metrics/index.json"]
    assert index["layout"] == layout and index["songs"] == {"train": 11, "test": 3}
    assert [s["path"] for s in index["skipped_files"]] == [str(bad.relative_to(repo))], "the user's own file is named"
    assert len((repo / "data/labels/noisy.csv").read_text().splitlines()) == 1 + 11 * 4, "its song is left out whole"
    assert math.isfinite(_metrics(repo)["metrics/separation/demucs.json"]["global_sdr"]["mean"]["mean_over_sources"])


def test_a_typo_in_a_param_fails_with_the_nearest_key(repo: Path) -> None:
    proc = _run(repo, "dvc", "exp", "run", "-S", "refine.treshold=0.5", ok=False)
    assert proc.returncode != 0 and "Could not override 'refine.treshold'" in proc.stderr
    proc = _run(repo, "dvc", "exp", "run", "-S", "+refine.treshold=0.5", ok=False)
    assert proc.returncode != 0
    assert "refine.treshold: unknown key; did you mean 'threshold'?" in proc.stdout + proc.stderr


def test_a_new_separator_is_one_module_and_one_params_block(repo: Path) -> None:
    shutil.copy(ROOT / "tests/tiny_separator.py", repo / SEPARATOR_FILE / "tiny.py")
    params = yaml.safe_load((repo / "params.yaml").read_text())
    _set_params(
        repo,
        separate={"models": [*params["separate"]["models"], "tiny"]},
        separators={
            "tiny": {
                "model": {"kernel_size": 9},
                "train": {
                    "steps": 2,
                    "batch_size": 2,
                    "segment_seconds": 1.0,
                    "checkpoint_every": 1,
                    "val_examples": 2,
                },
            }
        },
    )
    assert _ran(_run(repo, "dvc", "repro")) == {"validate", "train@tiny", "evaluate@tiny", "summarize"}
    package = torch.load(repo / "models/tiny/model.pt", weights_only=False)
    assert package["model"] == "tiny" and package["class"] == "TinyMask" and package["kwargs"]["kernel_size"] == 9
    scores = json.loads((repo / "metrics/separation/tiny.json").read_text())
    assert all(math.isfinite(v) for v in scores["global_sdr"]["mean"].values())


def _kill_tree(pid: int) -> None:
    """SIGKILL ``pid`` and all its descendants (read from /proc), deepest first; gone ones are skipped."""
    tree, todo = [], [pid]
    while todo:
        p = todo.pop()
        tree.append(p)
        with contextlib.suppress(OSError):
            for task in Path(f"/proc/{p}/task").iterdir():
                todo += [int(c) for c in (task / "children").read_text().split()]
    for p in reversed(tree):
        with contextlib.suppress(ProcessLookupError):
            os.kill(p, signal.SIGKILL)


def _kill_when(repo: Path, written: Path, *module_args: str) -> None:
    """Start a stage module as dvc.yaml would, kill it (and every rank) once ``written`` exists."""
    log = repo / "killed.log"
    proc = subprocess.Popen(
        [sys.executable, "-m", *module_args], cwd=repo, env=_env(repo), stdout=subprocess.DEVNULL, stderr=log.open("w")
    )
    deadline = time.monotonic() + 120
    while not written.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    _kill_tree(proc.pid)  # the launcher and every rank (torchrun starts its ranks in sessions of their own)
    proc.wait()
    assert written.exists(), f"{written} not written before the kill:\n{log.read_text()[-2000:]}"


@pytest.mark.parametrize("nproc", [2])  # one process: tests/test_training.py kills and resumes the same loop
def test_a_killed_training_stage_resumes_under_dvc_repro(repo: Path, nproc: int) -> None:
    _set_params(repo, separators={"xumx": {"train": {"steps": 60, "checkpoint_every": 1}}}, launch={"nproc": nproc})
    checkpoint = repo / "checkpoints" / "train_xumx.pt"
    _kill_when(repo, checkpoint, "selfrefine.stages.train", "xumx", "--nproc", str(nproc))  # as dvc.yaml starts it
    resumed = _run(repo, "dvc", "repro", "train@xumx")
    assert re.search(r"train-xumx: resuming from step [1-9]", resumed.stdout + resumed.stderr)
    assert not checkpoint.exists()
    assert json.loads((repo / "metrics/train/xumx.json").read_text())["val_loss"] > 0


def test_a_classify_stage_killed_in_its_second_fold_keeps_the_first(repo: Path) -> None:
    _set_params(repo, refine={"folds": 2}, classifier={"train": {"steps": 40, "eval_every": 20}})
    done = repo / "checkpoints" / "classify_1_fold0.done.pt"
    _kill_when(repo, done, "selfrefine.stages.classify", "1", "noisy")
    resumed = _run(repo, "dvc", "repro", "classify@1")
    assert "fold 0 was finished by an interrupted run; reloaded" in resumed.stdout + resumed.stderr
    assert (resumed.stdout + resumed.stderr).count("mix-train: step 40/40") == 1, "fold 1 alone is trained"
    assert not list((repo / "checkpoints").glob("classify_1_fold*"))
    assert len(_curve(repo, "classify_1/fold_0", "val_loss")) == len(_curve(repo, "classify_1/fold_1", "val_loss")) == 2


def _curve(repo: Path, run: str, metric: str) -> list[float]:
    rows = (repo / "dvclive" / run / "plots" / "metrics" / f"{metric}.tsv").read_text().splitlines()[1:]
    return [float(row.split("\t")[-1]) for row in rows]


def test_two_torchrun_ranks_train_what_one_process_trains(repo: Path, built: Path) -> None:
    _set_params(repo, launch={"nproc": 2})
    proc = _run(repo, "dvc", "repro", "--single-item", "classify@1", "train@demucs", "train@xumx")
    assert _ran(proc) == {"classify@1", "train@demucs", "train@xumx"}
    assert "--nproc 2" in proc.stdout
    for run in ("classify_1", "train_demucs"):  # same global batches; gradients summed in another order
        for metric in ("train_loss", "val_loss"):
            assert _curve(repo, run, metric) == pytest.approx(_curve(built, run, metric), rel=1e-4), (run, metric)
    # X-UMX has BatchNorm: on CPUs each rank normalises its half of the batch (SyncBatchNorm needs a GPU), so
    # its curve is close to, not equal to, the one-process curve.
    one, two = _curve(built, "train_xumx", "train_loss"), _curve(repo, "train_xumx", "train_loss")
    assert len(two) == len(one) and two == pytest.approx(one, rel=0.25)
    for name in ("classify_1", "train_demucs", "train_xumx"):  # rank 0 alone writes: one record, no stray files
        assert json.loads((repo / "timings" / f"{name}.json").read_text())["stage"] == name
    assert not list((repo / "checkpoints").glob("*.pt")), "finished runs leave no checkpoint"
    assert proc.stdout.count("train-demucs: step 2/2") + proc.stderr.count("train-demucs: step 2/2") == 1


def test_compare_queues_runs_keeps_per_song_scores_and_tabulates_intervals(repo: Path) -> None:
    # named pools: the smoke set is so small that a single-class pool can be empty for some seed's split;
    # one separator (X-UMX) keeps the test short: the tables are per model, whatever the model
    _set_params(repo, separate={"pool": "named", "models": ["xumx"]})
    _run(repo, "git", "commit", "-qam", "named pools")  # queued experiments see committed files only
    # separator replicates: a pipeline replicate of this tiny set can leave a pool empty (the noise draw changes);
    # that a pipeline replicate redraws the noise and keeps the songs is the next test's
    proc = _run(
        repo, "selfrefine", "compare", "--poll", "2", "--labels", "noisy,clean", "--seeds", "2", "--jobs", "2",
        "--vary", "separators",
    )  # fmt: skip
    assert proc.stderr.count(": queued compare-") == 4
    table = json.loads((repo / "metrics" / "compare.json").read_text())
    assert list(table["models"]) == ["xumx"]
    for model in ("xumx",):
        entry = table["models"][model]
        assert entry["seeds"] == [0, 1] and entry["songs"] == 3 and entry["vary"] == "separators"
        assert entry["noisy"]["ci_low"] <= entry["noisy"]["mean"] <= entry["noisy"]["ci_high"]
        assert math.isfinite(entry["clean_minus_noisy"]["mean"])
        rows = (repo / "metrics" / "compare" / f"{model}.csv").read_text().splitlines()
        assert len(rows) == 1 + 2 * 2 * 3 * 4  # tables x seeds x songs x sources
    runs = table["models"]["xumx"]["runs"]["noisy"]
    assert runs[0] != runs[1], "the two seeds are two different training runs"
    assert "| xumx | clean | **" in (repo / "metrics" / "compare.md").read_text()
    results = (repo / "docs" / "results.md").read_text()
    assert "| xumx | noisy | **" in results.split("<!-- results:start -->")[1].split("<!-- results:end -->")[0]
    headline = (repo / "README.md").read_text().split("<!-- headline:start -->")[1].split("<!-- headline:end -->")[0]
    assert "| xumx | " in headline and "2 x 3" in headline, "the README's headline: 2 runs x 3 songs"
    assert (repo / "plots" / "compare.png").stat().st_size > 1000
    before = (repo / "metrics" / "compare.json").read_text()
    (repo / "metrics" / "compare.json").unlink()
    _run(repo, "selfrefine", "compare", "--tabulate")
    assert (repo / "metrics" / "compare.json").read_text() == before, "one command regenerates it from the kept files"


def _changed_shares(repo: Path, stamp: str, trained_on: dict[str, str]) -> dict[str, float]:
    """``{round: share}`` of the stems whose label set round r's refinement changed from ``trained_on[r]``, read
    from the label tables of the iterations study's experiment of that round (seed 0)."""
    import dvc.api

    refs = _run(repo, "git", "for-each-ref", "--format=%(objectname) %(refname)", "refs/exps").stdout.split("\n")
    revs = {ref.rsplit("/", 1)[-1]: rev for rev, ref in (line.split() for line in refs if line.strip())}

    def table(rev: str, name: str) -> dict[tuple[str, str], str]:
        with dvc.api.open(f"data/labels/{name}.csv", repo=str(repo), rev=rev) as f:
            return {(row["song"], row["stem"]): row["labels"] for row in csv.DictReader(f)}

    shares = {}
    for r, before_name in trained_on.items():
        rev = revs[f"study-iterations-{r}-refined_{r}-s0-{stamp}"]
        before, after = table(rev, before_name), table(rev, f"refined_{r}")
        assert set(before) == set(after)
        shares[r] = sum(after[k] != before[k] for k in after) / len(after)
    return shares


def _stopping_round(rounds: dict[str, dict], below: float) -> str:
    """The noisy-only stopping rule, written out: the first round from 2 on that changed fewer than ``below`` of
    the label sets, else the last round."""
    names = list(rounds)
    settled = [r for r in names[1:] if rounds[r]["labels"]["changed_share"] < below]
    return settled[0] if settled else names[-1]


def test_a_study_runs_its_grid_as_experiments_resumes_and_tabulates(repo: Path) -> None:
    # iterations, rounds 1..3 with one training run each: two shared references and three points. The smoke
    # classifier (4 steps) is near chance: a low threshold keeps every class in the refined label sets, so no
    # named pool is empty (this test is about the study's machinery, not about the labels)
    _set_params(
        repo,
        separate={"pool": "named"},
        refine={"threshold": 0.05},
        study={"seeds": 1, "models": ["xumx"], "rounds": 3},
    )
    _run(repo, "git", "commit", "-qam", "a small study")  # queued experiments see committed files only
    proc = _run(repo, "selfrefine", "study", "iterations", "--poll", "2", "--jobs", "2")
    assert proc.stderr.count(": queued study-iterations-") == 5
    result = json.loads((repo / "metrics" / "studies" / "iterations.json").read_text())
    rounds = {e["point"]: e for e in result["points"]}
    assert list(rounds) == ["1", "2", "3"]
    assert rounds["3"]["overrides"] == {"+refine.rounds.3": "refined_2"}
    # each round is trained on the one before's labels: the chain ran in the experiments, round 3 included
    for r in ("2", "3"):
        assert rounds[r]["labels"]["accuracy_trained_on"] == rounds[str(int(r) - 1)]["labels"]["accuracy_refined"]
    for e in result["points"]:
        xumx = e["models"]["xumx"]
        assert xumx["seeds"] == [0] and xumx["songs"] == 3
        assert xumx["refined"]["ci_low"] <= xumx["refined"]["mean"] <= xumx["refined"]["ci_high"]
    assert rounds["1"]["models"]["xumx"]["noisy"] == rounds["3"]["models"]["xumx"]["noisy"], "one shared reference"
    stamp = json.loads((repo / "metrics" / "studies" / "iterations" / "batch.json").read_text())["stamp"]
    # each round's share of label sets changed, recomputed from its experiment's own label tables: the refined
    # table against the one the round was trained on and relabelled (round 1: noisy), not against the file names
    trained_on = {"1": "noisy", "2": "refined_1", "3": "refined_2"}
    assert {r: e["labels"]["changed_share"] for r, e in rounds.items()} == _changed_shares(repo, stamp, trained_on)
    below = yaml.safe_load((repo / "params.yaml").read_text())["study"]["stop_changed"]
    assert result["stopping_rule"] == {"changed_below": below, "round": _stopping_round(rounds, below)}
    section = (repo / "docs" / "studies.md").read_text().split("<!-- study:iterations:start -->")[1]
    section = section.split("<!-- study:")[0]
    assert "![iterations](../plots/studies/iterations.png)" in section
    assert f"picks round {result['stopping_rule']['round']}" in section
    assert (repo / "plots" / "studies" / "iterations.png").stat().st_size > 1000
    before = (repo / "metrics" / "studies" / "iterations.json").read_text()
    again = _run(repo, "selfrefine", "study", "iterations", "--poll", "2", "--stamp", stamp)
    assert "queued study-" not in again.stderr, "a finished study's stamp queues nothing"
    (repo / "metrics" / "studies" / "iterations.json").unlink()
    _run(repo, "selfrefine", "study", "iterations", "--tabulate")
    assert (repo / "metrics" / "studies" / "iterations.json").read_text() == before


def _remotes(repo: Path, tmp_path: Path) -> tuple[Path, Path]:
    """A bare git repository (``origin``, for commits and experiments) and a DVC remote (``storage``, the default,
    for data, models and reports), both holding ``repo``'s committed run."""
    origin, storage = tmp_path / "origin.git", tmp_path / "storage"
    _run(tmp_path, "git", "init", "-q", "--bare", str(origin))
    _run(repo, "git", "remote", "add", "origin", str(origin))
    _run(repo, "dvc", "remote", "add", "--default", "storage", str(storage))
    _run(repo, "git", "commit", "-qam", "remotes")
    _run(repo, "git", "push", "-q", "origin", "HEAD:main")
    _run(repo, "dvc", "push")
    return origin, storage


def _clone(origin: Path, path: Path) -> Path:
    _run(path.parent, "git", "clone", "-q", "--branch", "main", str(origin), str(path))
    _run(path, "git", "config", "user.name", "selfrefine tests")
    _run(path, "git", "config", "user.email", "tests@selfrefine.invalid")
    return path


def test_a_clone_pulls_data_models_and_reports_from_a_dvc_remote_and_runs_no_stage(repo: Path, tmp_path: Path) -> None:
    origin, _ = _remotes(repo, tmp_path)
    clone = _clone(origin, tmp_path / "clone")
    assert (clone / "metrics.json").is_file(), "git holds the key numbers"
    assert not (clone / "models/demucs/model.pt").exists() and not (clone / "metrics/refine/2.json").exists()
    _run(clone, "dvc", "pull")
    assert _stale(clone) == set()
    assert _ran(_run(clone, "dvc", "repro")) == set()
    for path in ("metrics/separation/xumx.json", "data/labels/refined_2.csv", "plots/separation/demucs/songs.csv"):
        assert (clone / path).read_bytes() == (repo / path).read_bytes(), path


def test_two_shards_in_two_clones_merge_into_the_table_of_one_run(repo: Path, tmp_path: Path) -> None:
    _set_params(repo, separate={"pool": "named", "models": ["xumx"]})
    _run(repo, "git", "commit", "-qam", "named pools")  # queued experiments see committed files only
    origin, _ = _remotes(repo, tmp_path)
    machines = [_clone(origin, tmp_path / f"machine{i}") for i in range(2)]
    stamp = "20260101-000000"
    for machine in machines:
        _run(machine, "dvc", "pull")
    shards = [  # the two machines at once, as two machines would
        subprocess.Popen(
            [
                "selfrefine",
                "compare",
                "--poll",
                "2",
                "--labels",
                "noisy,clean",
                "--seeds",
                "1",
                "--shard",
                f"{i}/2",
                "--stamp",
                stamp,
                "--jobs",  # the threads of the one-machine run below (--jobs 2): the same float arithmetic
                "2",
            ],
            cwd=machine,
            env=_env(machine),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )  # fmt: skip
        for i, machine in enumerate(machines)
    ]
    for shard, machine in zip(shards, machines):
        out, err = shard.communicate(timeout=900)
        assert shard.returncode == 0, out + err
        assert err.count(": queued compare-") == 1, "each machine runs its half"
        assert not (machine / "metrics/compare/xumx.csv").exists(), "a shard keeps nothing"
    pushed = _run(machines[1], "dvc", "exp", "list", "--name-only").stdout.split()
    _run(machines[1], "dvc", "exp", "push", "origin", *pushed)
    _run(machines[0], "dvc", "exp", "pull", "origin", *pushed)
    merged = _run(
        machines[0], "selfrefine", "compare", "--poll", "2", "--labels", "noisy,clean", "--seeds", "1", "--stamp", stamp
    )
    assert ": queued compare-" not in merged.stderr, "every experiment is found, none is queued again"
    _run(repo, "selfrefine", "compare", "--poll", "2", "--jobs", "2", "--labels", "noisy,clean", "--seeds", "1")
    one, two = (json.loads((m / "metrics/compare.json").read_text())["models"] for m in (repo, machines[0]))
    assert two == one
    assert (machines[0] / "metrics/compare/xumx.csv").read_text() == (repo / "metrics/compare/xumx.csv").read_text()


def test_a_queued_threshold_grid_reruns_only_the_refinement_and_dvc_views_lead_with_the_key_numbers(
    repo: Path,
) -> None:
    before = _metrics(repo)
    keys = {"labels.1", "labels.2", "exact.1", "exact.2", "sdr.demucs", "sdr.xumx", "bss.demucs", "bss.xumx"}
    _run(repo, "dvc", "exp", "run", "--queue", "-S", "refine.threshold=0.3,adaptive")
    _run(repo, "dvc", "queue", "start", "-j", "2")
    deadline = time.monotonic() + 900
    while re.search(r"\b(Queued|Running)\b", _run(repo, "dvc", "queue", "status").stdout):
        assert time.monotonic() < deadline, "the queued grid did not finish"
        time.sleep(2)
    shown = json.loads(_run(repo, "dvc", "exp", "show", "--json").stdout)
    experiments = {
        e["revs"][0]["data"]["params"]["params.yaml"]["data"]["refine"]["threshold"]: e["revs"][0]
        for node in shown
        for e in node.get("experiments") or []
        if e.get("revs")
    }
    assert set(experiments) == {0.3, "adaptive"}
    for experiment in experiments.values():
        numbers = experiment["data"]["metrics"]["metrics.json"]["data"]
        assert keys <= {f"{k}.{n}" for k, values in numbers.items() for n in values}, numbers
        assert set(experiment["data"]["metrics"]) == {"metrics.json"}, "the one DVC metric: no timings, no curves"
    adaptive = experiments["adaptive"]["name"]
    assert _ran(_run(repo, "dvc", "queue", "logs", adaptive)) == {
        "validate", "refine@1", "classify@2", "refine@2", "refine@clean", "select", "summarize"
    }  # fmt: skip
    _run(repo, "dvc", "exp", "apply", adaptive)
    after = _metrics(repo)
    assert after["metrics/refine/1.json"]["thresholds"] != before["metrics/refine/1.json"]["thresholds"]
    assert after["metrics/classifier/1.json"] == before["metrics/classifier/1.json"]
    assert after["metrics/separation/xumx.json"] == before["metrics/separation/xumx.json"], (
        "the smoke profile trains separators on the noisy labels, which no threshold changes"
    )
    changed = json.loads(_run(repo, "dvc", "metrics", "diff", "--json").stdout)
    assert set(changed) == {"metrics.json"}, "one DVC metric: the key numbers"
    assert any(key.startswith("labels.") for key in changed["metrics.json"])
    assert not any(key.startswith(("sdr.", "bss.", "exact.1")) for key in changed["metrics.json"])
    lines = _run(repo, "dvc", "metrics", "show").stdout.splitlines()
    assert lines and max(map(len, lines)) <= 200
    _run(repo, "dvc", "exp", "run", "-S", "separate.labels=clean")
    diff = _run(repo, "dvc", "metrics", "diff").stdout.splitlines()
    assert 2 < len(diff) <= 40 and any("sdr.xumx" in line for line in diff), diff
