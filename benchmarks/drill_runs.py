"""Drills on the real DAG (the smoke profile in scratch git+DVC projects): kills, a full disk, the user's own files
and two clones on one stem cache. Run through ``benchmarks/drills.py`` (``--only kill`` etc.).

* ``kill``: for every stage of the DAG, one uninterrupted forced run (its wall time, and its outputs equal to the
  reference run's), then ``--kills`` forced runs (``dvc repro -f -s <stage>``) each killed (SIGKILL, the whole
  process tree) at a moment drawn uniformly over that wall time. After each kill every file at the stage's
  declared output paths is compared with the reference: ``partial`` counts files present with other bytes,
  ``incomplete_folders`` declared folders present but lacking some of the reference's files, ``stray`` files the
  reference does not have (temporary files left by the kill). DVC's own files written in place (``dvc.lock``,
  ``.dvc/tmp/rwlock``) are checked after each kill; a damaged one is counted and repaired as a user would
  (``git checkout dvc.lock``; deleting the rwlock). Then ``dvc repro``
  must finish, give every stage's outputs the reference's hashes (``dvc.lock``) and leave no stray file.
* ``full-disk``: the project and its stem cache on a tmpfs (needs root to mount) sized at fractions of what a
  whole run needs; ``dvc repro`` must stop with one error line naming the file or the file system that filled
  up (no traceback), every output present must equal the reference's, and after the tmpfs is grown
  ``dvc repro`` must finish with the reference's hashes.
* ``source-stems``: a user's library outside the project (accepted as-is, so ``corrupt`` would link it), with
  DVC's cache type ``copy`` and ``hardlink``: SHA-256, mode and mtime of every user file before and after
  ``dvc repro``, ``dvc exp run -S seed=1``, ``dvc gc -w -f`` and ``dvc checkout``.
* ``shared-cache``: two clones run ``dvc repro`` at once on one fresh stem cache; both must finish with the
  reference's hashes.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import psutil
import yaml

from selfrefine.dvcfiles import lock_damaged, rwlock_damaged

ROOT = Path(__file__).resolve().parents[1]
LEFT_OUT = ("tests/", "data/", "metrics/", "plots/", "dvclive/", "timings/", "models/", "checkpoints/")


def environ(project: Path, cache: Path) -> dict[str, str]:
    """A stage's environment in ``project``: the venv's tools, the project's code, its own stem cache."""
    return {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        "PYTHONPATH": str(project / "src"),
        "SELFREFINE_CACHE": str(cache),
        "SELFREFINE_DVC_TIMEOUT": "120",
    }


def sh(project: Path, *args: str, cache: Path, ok: bool = True) -> subprocess.CompletedProcess:
    done = subprocess.run(args, cwd=project, env=environ(project, cache), capture_output=True, text=True)
    if ok and done.returncode:
        raise RuntimeError(f"{' '.join(args)} in {project} failed:\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}")
    return done


def pristine(dest: Path, cache: Path, **params: dict) -> Path:
    """A git+DVC copy of the project's code on the smoke profile (``params`` merged in), committed, not run."""
    names = subprocess.run(
        ["git", "ls-files", "-co", "--exclude-standard"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.split()
    for name in names:
        if name.startswith(LEFT_OUT) or name == "dvc.lock" or not (ROOT / name).is_file():
            continue
        (dest / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / name, dest / name)
    sh(dest, "git", "init", "-q", cache=cache)
    sh(dest, "git", "config", "user.name", "selfrefine drills", cache=cache)
    sh(dest, "git", "config", "user.email", "drills@selfrefine.invalid", cache=cache)
    sh(dest, "selfrefine", "profile", "smoke", cache=cache)
    if params:
        set_params(dest, params)
    sh(dest, "git", "add", "-A", cache=cache)
    sh(dest, "git", "commit", "-qm", "smoke profile", cache=cache)
    return dest


def set_params(project: Path, changes: dict) -> None:
    data = yaml.safe_load((project / "params.yaml").read_text())
    for section, values in changes.items():
        data[section].update(values)
    (project / "params.yaml").write_text(yaml.safe_dump(data, sort_keys=False))


def declared(project: Path) -> dict[str, list[str]]:
    """Each stage's declared output paths, from ``dvc.lock`` (stage order as DVC wrote it)."""
    lock = yaml.safe_load((project / "dvc.lock").read_text())["stages"]
    return {name: [o["path"] for o in stage.get("outs", [])] for name, stage in lock.items()}


def hashes(project: Path) -> dict[str, dict[str, str]]:
    """Each stage's output hashes in ``dvc.lock``."""
    lock = yaml.safe_load((project / "dvc.lock").read_text())["stages"]
    return {name: {o["path"]: o.get("md5", "") for o in stage.get("outs", [])} for name, stage in lock.items()}


def files(project: Path, paths: list[str]) -> dict[str, str]:
    """SHA-256 of every file at or under ``paths`` (relative to ``project``)."""
    found = {}
    for rel in paths:
        path = project / rel
        for f in [path] if path.is_file() else sorted(path.rglob("*")) if path.is_dir() else []:
            if f.is_file():
                found[str(f.relative_to(project))] = hashlib.sha256(f.read_bytes()).hexdigest()
    return found


def compare_files(seen: dict[str, str], reference: dict[str, str]) -> tuple[list[str], list[str]]:
    """``(partial, stray)``: files present with other bytes than the reference's, files it does not have."""
    return [k for k, v in seen.items() if k in reference and v != reference[k]], [k for k in seen if k not in reference]


def incomplete(project: Path, outs: list[str], seen: dict[str, str], reference: dict[str, str]) -> list[str]:
    """Declared output folders present but lacking files that the reference run's hold."""
    return [
        o for o in outs if (project / o).is_dir() and any(k.startswith(o + "/") and k not in seen for k in reference)
    ]


def kill_tree(pid: int) -> None:
    """Freeze ``pid`` and every descendant (torchrun ranks included), then SIGKILL them all."""
    try:
        root = psutil.Process(pid)
    except psutil.NoSuchProcess:
        return
    procs = [root, *root.children(recursive=True)]
    for p in procs:
        with contextlib.suppress(psutil.Error):
            p.suspend()
    with contextlib.suppress(psutil.Error):
        procs += [c for c in root.children(recursive=True) if c not in procs]
    for p in procs:
        with contextlib.suppress(psutil.Error):
            p.kill()
    psutil.wait_procs(procs, timeout=30)


_REFERENCES: dict[Path, tuple[Path, Path, dict]] = {}


def _reference(work: Path) -> tuple[Path, Path, dict]:
    """A pristine project and one uninterrupted run of it, ``(pristine, run, {hashes, files, outs, seconds})``,
    made once under ``work.parent`` for every drill of this invocation."""
    shared = work.parent
    if shared not in _REFERENCES:
        cache = shared / "stems-reference"
        clean = pristine(shared / "pristine", cache)
        run = shared / "reference"
        shutil.copytree(clean, run, symlinks=True)
        began = time.perf_counter()
        sh(run, "dvc", "repro", cache=cache)
        outs = declared(run)
        _REFERENCES[shared] = (
            clean,
            run,
            {
                "hashes": hashes(run),
                "files": files(run, [p for paths in outs.values() for p in paths]),
                "outs": outs,
                "seconds": round(time.perf_counter() - began, 1),
                "usage": _usage(run, cache),
            },
        )
    return _REFERENCES[shared]


def kill(work: Path, count: int, seed: int = 0) -> dict:
    """The kill drill (module docstring)."""
    rng = np.random.default_rng(seed)
    began = time.perf_counter()
    _, run, ref = _reference(work)
    project, cache = work / "killed", work / "stems-killed"
    shutil.copytree(run, project, symlinks=True)  # the reference run, its DVC cache included
    stages, failures = {}, []
    for stage, outs in ref["outs"].items():
        mine = {k: v for k, v in ref["files"].items() if any(k == o or k.startswith(o + "/") for o in outs)}
        t = time.perf_counter()
        sh(project, "dvc", "repro", "-f", "-s", stage, cache=cache)
        wall = time.perf_counter() - t
        if files(project, outs) != mine:
            failures.append({"stage": stage, "what": "an uninterrupted forced rerun differs from the reference"})
        record = {"wall_s": round(wall, 1), "tried": 0, "finished_before_the_kill": 0}
        record |= {"partial": 0, "incomplete_folders": 0, "stray": 0, "dvc_lock_damaged": 0, "rwlock_damaged": 0}
        log = work / "run.log"
        for _ in range(count):
            lock = (project / "dvc.lock").read_bytes()  # what `git checkout dvc.lock` would bring back
            with log.open("w") as out:
                proc = subprocess.Popen(
                    ["dvc", "repro", "-f", "-s", stage],
                    cwd=project,
                    env=environ(project, cache),
                    stdout=out,
                    stderr=subprocess.STDOUT,
                )
                record["tried"] += 1
                try:
                    code = proc.wait(timeout=float(rng.uniform(0, wall)))
                    record["finished_before_the_kill"] += 1
                    if code:  # a run after an earlier kill failed (a stale lock, a damaged file)
                        failures.append(
                            {"stage": stage, "what": "a run after a kill failed", "log": log.read_text()[-500:]}
                        )
                except subprocess.TimeoutExpired:
                    kill_tree(proc.pid)
                    proc.wait()
            damaged = lock_damaged(project)
            if damaged:  # DVC writes dvc.lock in place: a kill while it writes leaves it cut short
                record["dvc_lock_damaged"] += 1
                failures.append({"stage": stage, "what": "dvc.lock cut short by the kill", "error": damaged})
                (project / "dvc.lock").write_bytes(lock)  # the user's remedy: git checkout dvc.lock
            damaged = rwlock_damaged(project)
            if damaged:  # DVC's read-write lock, JSON written in place: every later dvc command fails on it
                record["rwlock_damaged"] += 1
                failures.append({"stage": stage, "what": ".dvc/tmp/rwlock cut short by the kill", "error": damaged})
                (project / ".dvc" / "tmp" / "rwlock").unlink()  # the remedy (no dvc process is running)
            seen = files(project, outs)
            partial, stray = compare_files(seen, mine)
            folders = incomplete(project, outs, seen, mine)
            record["partial"] += len(partial)
            record["stray"] += len(stray)
            record["incomplete_folders"] += len(folders)
            if partial or folders or stray:
                failures.append(
                    {
                        "stage": stage,
                        "what": "a partial output",
                        "files": partial[:5],
                        "folders": folders,
                        "stray": stray[:5],
                    }
                )
        done = sh(project, "dvc", "repro", cache=cache, ok=False)
        seen = files(project, outs)
        if done.returncode:
            failures.append({"stage": stage, "what": "dvc repro after the kills failed", "stderr": done.stderr[-500:]})
        elif hashes(project)[stage] != ref["hashes"][stage] or seen != mine:
            failures.append({"stage": stage, "what": "outputs after the kills differ from the reference"})
        record["survived"] = not done.returncode and seen == mine
        stages[stage] = record
        print(f"kill: {stage}: {json.dumps(record)}", flush=True)
    status = sh(project, "dvc", "status", "--json", cache=cache, ok=False)
    if json.loads(status.stdout or "{}"):
        failures.append({"what": "dvc status not clean after the drill", "status": status.stdout[-500:]})
    return kill_summary(stages, failures) | {
        "reference_seconds": ref["seconds"],
        "seconds": round(time.perf_counter() - began, 1),
    }


def kill_summary(stages: dict[str, dict], failures: list[dict]) -> dict:
    """The kill drill's counts from its per-stage records: a kill survived when it left no partial file, no
    incomplete folder and no stray file at a declared path (DVC's own dvc.lock and rwlock are counted apart,
    repaired as a user would); a stage survived when `dvc repro` after its kills gave the reference's bytes."""
    ours = sum(1 for f in failures if f.get("what") in ("a partial output", "a run after a kill failed"))
    return {
        "tried": sum(r["tried"] for r in stages.values()),
        "survived": sum(r["tried"] for r in stages.values()) - ours,
        "stages_survived": sum(bool(r["survived"]) for r in stages.values()),
        "stages": stages,
        "partial_files": sum(r["partial"] for r in stages.values()),
        "incomplete_folders": sum(r["incomplete_folders"] for r in stages.values()),
        "stray_files_seen": sum(r["stray"] for r in stages.values()),
        "dvc_lock_damaged": sum(r["dvc_lock_damaged"] for r in stages.values()),
        "rwlock_damaged": sum(r["rwlock_damaged"] for r in stages.values()),
        "failures": failures,
    }


def _usage(*paths: Path) -> int:
    """Bytes the files under ``paths`` occupy (hard links once)."""
    seen, total = set(), 0
    for root in paths:
        for f in root.rglob("*"):
            st = f.lstat()
            if (st.st_dev, st.st_ino) not in seen:
                seen.add((st.st_dev, st.st_ino))
                total += st.st_blocks * 512
    return total


def _mount(point: Path, size: int, remount: bool = False) -> None:
    options = f"{'remount,' if remount else ''}size={size}"
    args = ["mount", "-o", options, point] if remount else ["mount", "-t", "tmpfs", "-o", options, "tmpfs", point]
    subprocess.run(args, check=True, capture_output=True)


def full_disk(work: Path, points: int) -> dict:
    """The full-disk drill (module docstring)."""
    began = time.perf_counter()
    disk = work / "disk"
    disk.mkdir(parents=True)
    try:
        _mount(disk, 1 << 20)
        subprocess.run(["umount", disk], check=True)
    except (subprocess.CalledProcessError, FileNotFoundError) as err:
        return {"skipped": f"cannot mount a tmpfs here ({err}); run as root"}
    clean, _, ref = _reference(work)
    base, need = _usage(clean), ref["usage"]
    cases, failures = [], []
    for fraction in np.linspace(0.1, 0.9, points):
        size = int(base + fraction * (need - base)) // 4096 * 4096
        _mount(disk, size)
        try:
            project, cache = disk / "project", disk / "stems"
            shutil.copytree(clean, project, symlinks=True)
            done = sh(project, "dvc", "repro", cache=cache, ok=False)
            text = done.stdout + done.stderr
            ours = [s for s in text.splitlines() if s.startswith("error:")]  # a stage's one line
            dvcs = [s for s in text.splitlines() if s.startswith("ERROR:")]  # DVC's own (it also fills the disk)
            case = {"fraction": round(float(fraction), 2), "size_mb": round(size / 2**20, 1), "exit": done.returncode}
            case["lines"] = [s[:300] for s in ours + dvcs]
            outs = [p for paths in ref["outs"].values() for p in paths]
            before = files(clean, outs)  # what git holds at output paths (metrics.json): not written by this run
            seen = {k: v for k, v in files(project, outs).items() if before.get(k) != v}
            partial, stray = compare_files(seen, ref["files"])
            case["partial"], case["stray"] = partial[:5], stray[:5]
            named = (len(ours) == 1 and str(disk) in ours[0]) or (
                not ours and any("No space left" in s and str(disk) in s for s in dvcs)
            )
            ok = done.returncode == 0 or (named and "Traceback" not in text)
            _mount(disk, 4 * need, remount=True)
            again = sh(project, "dvc", "repro", cache=cache, ok=False)
            case["recovered"] = again.returncode == 0 and hashes(project) == ref["hashes"]
            case["survived"] = ok and not partial and case["recovered"]
            if not case["survived"]:
                failures.append(case | {"tail": text[-800:], "again": again.stderr[-500:]})
            cases.append(case)
            print(f"full-disk: {json.dumps(case)}", flush=True)
        finally:
            subprocess.run(["umount", disk], check=False)
    return {
        "tried": len(cases),
        "survived": sum(c["survived"] for c in cases),
        "need_mb": round(need / 2**20, 1),
        "cases": cases,
        "failures": failures,
        "seconds": round(time.perf_counter() - began, 1),
    }


def _stat(root: Path) -> dict[str, tuple]:
    return {
        str(f.relative_to(root)): (hashlib.sha256(f.read_bytes()).hexdigest(), f.stat().st_mode, f.stat().st_mtime_ns)
        for f in sorted(root.rglob("*"))
        if f.is_file()
    }


def source_stems(work: Path) -> dict:
    """The source-stems drill (module docstring)."""
    began = time.perf_counter()
    cache = work / "stems-source"
    maker = pristine(work / "maker", cache)
    sh(maker, "dvc", "repro", "generate", cache=cache)
    library = work / "library"
    shutil.copytree(maker / "data" / "generated", library)
    data = {"root": str(library), "test_root": str(library / "test"), "layout": "musdb"}
    steps = [
        ("dvc repro", ["dvc", "repro"]),
        ("dvc exp run -S seed=1", ["dvc", "exp", "run", "-S", "seed=1"]),
        ("dvc gc -w -f", ["dvc", "gc", "-w", "-f"]),
        ("dvc checkout", ["dvc", "checkout", "-f"]),
    ]
    runs, failures = {}, []
    for kind in ("copy", "hardlink"):
        project = pristine(work / f"user-{kind}", cache, data=data)
        sh(project, "dvc", "config", "--local", "cache.type", kind, cache=cache)
        before = _stat(library)
        runs[kind] = {}
        for name, args in steps:
            if name == "dvc checkout":
                shutil.rmtree(project / "data" / "noisy", ignore_errors=True)
            done = sh(project, *args, cache=cache, ok=False)
            after = _stat(library)
            changed = sorted(k for k in before if after.get(k) != before[k])
            runs[kind][name] = {"exit": done.returncode, "files": len(before), "changed": len(changed)}
            if done.returncode or changed:
                failures.append({"cache": kind, "step": name, "changed": changed[:5], "stderr": done.stderr[-300:]})
        print(f"source-stems: {kind}: {json.dumps(runs[kind])}", flush=True)
    return {
        "tried": sum(len(r) for r in runs.values()),
        "survived": sum(not r["exit"] and not r["changed"] for steps_ in runs.values() for r in steps_.values()),
        "runs": runs,
        "failures": failures,
        "seconds": round(time.perf_counter() - began, 1),
    }


def shared_cache(work: Path) -> dict:
    """The shared-cache drill (module docstring)."""
    began = time.perf_counter()
    clean, _, ref = _reference(work)
    cache = work / "stems-shared"
    clones = [work / "clone-a", work / "clone-b"]
    for clone in clones:
        shutil.copytree(clean, clone, symlinks=True)
    procs = [
        subprocess.Popen(
            ["dvc", "repro"], cwd=c, env=environ(c, cache), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
        )
        for c in clones
    ]
    results = [(p.wait(), p.stderr.read()) for p in procs]
    failures = [
        {"clone": c.name, "exit": code, "stderr": err[-500:]}
        for c, (code, err) in zip(clones, results, strict=True)
        if code or hashes(c) != ref["hashes"]
    ]
    return {
        "tried": 2,
        "survived": 2 - len(failures),
        "failures": failures,
        "seconds": round(time.perf_counter() - began, 1),
    }
