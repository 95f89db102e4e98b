"""Fault drills: damaged inputs thrown at the pipeline, counted as survived (one line, or accepted) or not.

    python benchmarks/drills.py                       # every drill at full size -> benchmarks/results/drills.json
    python benchmarks/drills.py --only fuzz-audio --audio 50

Each drill writes its section of ``benchmarks/results/drills.json`` (the other sections are kept):

* ``fuzz-audio``: random damage to WAV and FLAC files (header and data bytes, truncation, garbage, chunk sizes,
  format fields, NaN samples, empty files) of one stem of a song in a user's library, indexed as the ``index``
  stage indexes it (``build_index``, with ``data.on_bad_file`` skip and error in turn). Survived: the file was
  accepted as audio, or the song was skipped / the index stopped with one line naming the damaged file. Failed: a
  traceback (any exception but :class:`selfrefine.errors.UserError`), a message of several lines or one not naming
  the file. ``--stage N`` of the mutations also run the real stage (``python -m selfrefine.stages.index``) in a
  scratch project: exit 0, or non-zero with exactly one ``error:`` line and no traceback.
* ``fuzz-params``: random damage to ``params.yaml`` (a key removed, misspelt or added; a value of another type or
  out of range; a section replaced by a scalar; broken YAML), loaded as every stage loads it. Survived: valid, or
  one line (``ParamsError``). ``--check N`` of them also run ``selfrefine check`` (which builds every model).

* ``kill``, ``full-disk``, ``source-stems``, ``shared-cache``: drills on the real DAG (the smoke profile in
  scratch projects), described in ``benchmarks/drill_runs.py``: SIGKILL at random moments of every stage, a
  tmpfs that fills up, the user's own files under DVC's cache types, two clones on one stem cache.

The test suite runs the fuzz drills smaller (``tests/test_drills.py``), and checks the user's files and a full
disk in ``tests/test_pipeline.py`` and ``tests/test_drills.py``.
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf
import yaml

from selfrefine import CLASSES
from selfrefine.config import load_params
from selfrefine.data.index import Checks, build_index
from selfrefine.errors import UserError

sys.path.insert(0, str(Path(__file__).parent))
import drill_runs

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "drills.json"

AUDIO_MUTATIONS = (
    "header_bytes",
    "any_bytes",
    "truncate",
    "garbage_tail",
    "insert_bytes",
    "chunk_size",
    "format_field",
    "nan_samples",
    "empty",
    "text",
)


# --- audio ---------------------------------------------------------------------------------------------------


def _bases(folder: Path, rng: np.random.Generator) -> list[Path]:
    """Valid files to damage: float WAV, 16-bit WAV (stereo, 44.1 kHz), FLAC, 24-bit FLAC stereo."""
    folder.mkdir(parents=True, exist_ok=True)
    specs = [("float.wav", 16000, 1, "FLOAT"), ("pcm16.wav", 44100, 2, "PCM_16"), ("pcm16.flac", 16000, 1, "PCM_16")]
    specs.append(("pcm24.flac", 22050, 2, "PCM_24"))
    paths = []
    for name, rate, channels, subtype in specs:
        audio = 0.3 * np.sin(2 * np.pi * 220 * np.arange(rate // 2) / rate)[:, None] * np.ones(channels)
        audio += 0.01 * rng.standard_normal(audio.shape)
        sf.write(str(folder / name), audio.astype(np.float32), rate, subtype=subtype)
        paths.append(folder / name)
    return paths


def mutate(data: bytes, kind: str, rng: np.random.Generator, float_wav: bool) -> bytes:
    """One random damage of kind ``kind`` (:data:`AUDIO_MUTATIONS`) to a file's bytes."""
    buf = bytearray(data)
    n = len(buf)
    if kind == "header_bytes":
        for _ in range(int(rng.integers(1, 5))):
            buf[int(rng.integers(0, min(64, n)))] ^= int(rng.integers(1, 256))
    elif kind == "any_bytes":
        for _ in range(int(rng.integers(1, 17))):
            buf[int(rng.integers(0, n))] ^= int(rng.integers(1, 256))
    elif kind == "truncate":
        buf = buf[: int(rng.integers(0, n))]
    elif kind == "garbage_tail":
        buf += rng.integers(0, 256, int(rng.integers(1, 2000)), dtype=np.uint8).tobytes()
    elif kind == "insert_bytes":
        at = int(rng.integers(0, n))
        buf[at:at] = rng.integers(0, 256, int(rng.integers(1, 64)), dtype=np.uint8).tobytes()
    elif kind == "chunk_size":
        value = int(rng.choice([0, 1, 7, 2**31 - 1, 2**32 - 1, int(rng.integers(0, 2**32))]))
        at = int(rng.choice([4, 16, 40])) if data[:4] == b"RIFF" else int(rng.integers(4, min(42, n - 4)))
        buf[at : at + 4] = value.to_bytes(4, "little")
    elif kind == "format_field":
        at, width = [(22, 2), (24, 4), (34, 2), (20, 2), (32, 2)][int(rng.integers(0, 5))]
        if data[:4] != b"RIFF":  # FLAC STREAMINFO: sample rate / channels / bits live at bytes 18-21
            at, width = int(rng.integers(18, 22)), 1
        value = int(rng.choice([0, 1, 3, 255, 65535, int(rng.integers(0, 2 ** (8 * width)))]))
        buf[at : at + width] = (value % 2 ** (8 * width)).to_bytes(width, "little")
    elif kind == "nan_samples":
        if float_wav:
            start = data.index(b"data") + 8
            count = int(rng.integers(1, 50))
            for _ in range(count):
                at = start + 4 * int(rng.integers(0, (n - start) // 4))
                buf[at : at + 4] = np.array([rng.choice([np.nan, np.inf, -np.inf])], dtype=np.float32).tobytes()
        else:
            buf[int(rng.integers(0, n))] ^= 0xFF
    elif kind == "empty":
        buf = bytearray()
    elif kind == "text":
        buf = bytearray(b"this is not audio\n" * int(rng.integers(1, 100)))
    return bytes(buf)


def _library(root: Path, base: Path, damaged: bytes) -> Path:
    """A user's library: two good training songs, one whose ``vocals`` stem is ``damaged`` (same suffix as
    ``base``), and one good test song. Returns the damaged file."""
    for split, song in (("train", "good_a"), ("train", "good_b"), ("train", "damaged"), ("test", "clean")):
        folder = root / split / song
        folder.mkdir(parents=True)
        for stem in CLASSES:
            shutil.copyfile(base, folder / f"{stem}{base.suffix}")
    target = root / "train" / "damaged" / f"vocals{base.suffix}"
    target.write_bytes(damaged)
    return target


def _judge(error: BaseException | None, rows: list[dict], skipped: list[dict], target: Path, mode: str) -> str:
    """``accepted`` / ``skipped`` / ``stopped`` when survived, else why not."""
    if error is not None:
        if not isinstance(error, UserError):
            return f"traceback: {type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}"
        text = str(error)
        if "\n" in text:
            return "a message of several lines"
        return "stopped" if str(target) in text else f"a message not naming the file: {text}"
    if any(r["path"] == str(target) for r in rows):
        return "accepted"
    mine = [s for s in skipped if s["path"] == str(target) or str(target) in s["reason"]]
    if mode == "skip" and mine and all("\n" not in s["reason"] for s in mine):
        return "skipped"
    return "left out without a line naming it"


def fuzz_audio(count: int, seed: int = 0, stage_runs: int = 0) -> dict:
    """``count`` damaged files through the index (in-process), the first ``stage_runs`` also through the stage."""
    rng = np.random.default_rng(seed)
    outcomes: Counter[str] = Counter()
    failures: list[dict] = []
    by_kind = {k: Counter() for k in AUDIO_MUTATIONS}
    stage = {"tried": 0, "survived": 0, "failures": []}
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        bases = _bases(Path(tmp) / "bases", rng)
        for i in range(count):
            base = bases[i % len(bases)]
            kind = AUDIO_MUTATIONS[int(rng.integers(0, len(AUDIO_MUTATIONS)))]
            damaged = mutate(base.read_bytes(), kind, rng, base.name == "float.wav")
            root = Path(tmp) / f"library_{i}"
            target = _library(root, base, damaged)
            mode = "skip" if i % 2 == 0 else "error"
            checks = Checks(sample_rate=16000, channels=1, convert=True, silence_db=-60.0, on_bad_file=mode)
            error, rows, skipped = None, [], []
            try:
                rows, skipped = build_index(root, "musdb", root / "test", checks)
            except Exception as err:  # the drill counts what escapes
                error = err
            verdict = _judge(error, rows, skipped, target, mode)
            survived = verdict in ("accepted", "skipped", "stopped")
            outcomes[verdict if survived else "failed"] += 1
            by_kind[kind][verdict.split(":")[0]] += 1
            if not survived:
                failures.append({"mutation": kind, "base": base.name, "mode": mode, "verdict": verdict})
            if i < stage_runs:
                stage["tried"] += 1
                problem = _stage_index(root, Path(tmp) / f"project_{i}", mode)
                if problem is None:
                    stage["survived"] += 1
                else:
                    stage["failures"].append({"mutation": kind, "base": base.name, "mode": mode, "problem": problem})
            shutil.rmtree(root)
    return _summary(count, failures, outcomes, by_kind, started) | {"stage": stage}


def _summary(count: int, failures: list[dict], outcomes: dict, by_kind: dict, started: float) -> dict:
    """A drill's counts: tried, survived, tracebacks, outcomes (overall and per mutation), the first failures."""
    return {
        "tried": count,
        "survived": count - len(failures),
        "tracebacks": sum(f["verdict"].startswith("traceback") for f in failures),
        "outcomes": outcomes,
        "by_mutation": by_kind,
        "failures": failures[:20],
        "seconds": round(time.perf_counter() - started, 1),
    }


def _stage_index(root: Path, project: Path, mode: str) -> str | None:
    """Run the real ``index`` stage on ``root`` in a scratch project; ``None`` when it survived."""
    project.mkdir()
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["data"].update({"root": str(root), "test_root": str(root / "test"), "truth": False, "on_bad_file": mode})
    (project / "params.yaml").write_text(yaml.safe_dump(params))
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    done = subprocess.run(
        [sys.executable, "-m", "selfrefine.stages.index"], cwd=project, capture_output=True, text=True, env=env
    )
    shutil.rmtree(project)
    lines = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    if "Traceback" in done.stderr:
        return "traceback: " + done.stderr.strip().splitlines()[-1]
    if done.returncode != 0 and len(lines) != 1:
        return f"exit {done.returncode} with {len(lines)} error lines"
    return None


# --- params --------------------------------------------------------------------------------------------------

_VALUES: tuple[Any, ...] = (-1, 0, 1, 0.5, 1e9, -1e9, "abc", "", None, True, False, [], {}, [1, 2], {"x": 1})


def _leaves(data: Any, prefix: tuple = ()) -> list[tuple]:
    """Key paths of every value in a nested mapping (mappings included)."""
    out = []
    if isinstance(data, dict):
        for key, value in data.items():
            out.append((*prefix, key))
            out += _leaves(value, (*prefix, key))
    return out


def mutate_params(data: dict, rng: np.random.Generator) -> tuple[str, Any]:
    """One random damage to a params mapping: ``(kind, the mapping or YAML text)``."""
    data = copy.deepcopy(data)
    paths = _leaves(data)
    path = paths[int(rng.integers(0, len(paths)))]
    parent = data
    for key in path[:-1]:
        parent = parent[key]
    kind = str(rng.choice(["delete", "misspell", "value", "special", "unknown", "section", "top", "yaml"]))
    if kind == "delete":
        del parent[path[-1]]
    elif kind == "misspell":
        key = str(path[-1])
        at = int(rng.integers(0, len(key)))
        parent[key[:at] + key[at + 1 :] + ("x" if at == len(key) - 1 else "")] = parent.pop(path[-1])
    elif kind == "value":
        parent[path[-1]] = _VALUES[int(rng.integers(0, len(_VALUES)))]
    elif kind == "special":
        parent[path[-1]] = float(rng.choice([math.nan, math.inf, -math.inf]))
    elif kind == "unknown":
        parent[f"unknown_{int(rng.integers(0, 100))}"] = 1
    elif kind == "section":
        top = list(data)[int(rng.integers(0, len(data)))]
        data[top] = _VALUES[int(rng.integers(0, len(_VALUES)))]
    elif kind == "top":
        return kind, yaml.safe_dump(_VALUES[int(rng.integers(0, len(_VALUES)))])
    else:
        text = bytearray(yaml.safe_dump(data).encode())
        for _ in range(int(rng.integers(1, 6))):
            text[int(rng.integers(0, len(text)))] = int(rng.choice(list(b":-[]{}\t'\"&*!|>%@`")))
        return kind, text.decode(errors="replace")
    return kind, yaml.safe_dump(data)


def fuzz_params(count: int, seed: int = 0, check_runs: int = 0) -> dict:
    """``count`` damaged params files loaded as the stages load them; the first ``check_runs`` also through
    ``selfrefine check``."""
    rng = np.random.default_rng(seed)
    base = yaml.safe_load((ROOT / "params.yaml").read_text())
    outcomes = Counter({"valid": 0, "one_line": 0})
    by_kind: defaultdict[str, Counter[str]] = defaultdict(Counter)
    failures: list[dict] = []
    check = {"tried": 0, "survived": 0, "failures": []}
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "params.yaml"
        for i in range(count):
            kind, text = mutate_params(base, rng)
            path.write_text(text)
            try:
                load_params(path)
                verdict = "valid"
            except UserError as err:
                verdict = "one_line" if "\n" not in str(err) and str(path) in str(err) else f"message: {err}"
            except Exception as err:  # the drill counts what escapes
                verdict = f"traceback: {type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}"
            by_kind[kind][verdict.split(":")[0]] += 1
            if verdict in outcomes:
                outcomes[verdict] += 1
            else:
                failures.append({"mutation": kind, "verdict": verdict[:300]})
            if i < check_runs:
                check["tried"] += 1
                done = subprocess.run(
                    [sys.executable, "-c", "from selfrefine.cli import app; app()", "check", "--params", str(path)],
                    capture_output=True,
                    text=True,
                    env={**os.environ, "PYTHONPATH": str(ROOT / "src")},
                )
                errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
                if "Traceback" in done.stderr or (done.returncode != 0 and len(errors) != 1):
                    check["failures"].append({"mutation": kind, "stderr": done.stderr[-300:]})
                else:
                    check["survived"] += 1
    return _summary(count, failures, outcomes, by_kind, started) | {"check": check}


FUZZ = ("fuzz-audio", "fuzz-params")
RUNS = {
    "kill": lambda work, args: drill_runs.kill(work, args.kills, args.seed),
    "full-disk": lambda work, args: drill_runs.full_disk(work, args.disk_points),
    "source-stems": lambda work, args: drill_runs.source_stems(work),
    "shared-cache": lambda work, args: drill_runs.shared_cache(work),
}
"""The drills on the real DAG (``drill_runs``), each in a scratch folder."""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", choices=[*FUZZ, *RUNS], action="append")
    parser.add_argument("--audio", type=int, default=500, help="damaged audio files")
    parser.add_argument("--stage", type=int, default=20, help="of them, also through the index stage")
    parser.add_argument("--params", type=int, default=200, help="damaged params files")
    parser.add_argument("--check", type=int, default=10, help="of them, also through selfrefine check")
    parser.add_argument("--kills", type=int, default=20, help="kills per stage of the smoke DAG")
    parser.add_argument("--disk-points", type=int, default=5, help="tmpfs sizes for the full-disk drill")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    only = set(args.only or [*FUZZ, *RUNS])
    results = json.loads(RESULTS.read_text()) if RESULTS.is_file() else {}
    if "fuzz-audio" in only:
        results["fuzz-audio"] = fuzz_audio(args.audio, args.seed, args.stage)
        print("fuzz-audio:", json.dumps({k: results["fuzz-audio"][k] for k in ("tried", "survived", "tracebacks")}))
    if "fuzz-params" in only:
        results["fuzz-params"] = fuzz_params(args.params, args.seed, args.check)
        print("fuzz-params:", json.dumps({k: results["fuzz-params"][k] for k in ("tried", "survived", "tracebacks")}))
    with tempfile.TemporaryDirectory(prefix="drills-") as shared:  # one reference run for every DAG drill
        for name in [n for n in RUNS if n in only]:
            (Path(shared) / name).mkdir()
            results[name] = RUNS[name](Path(shared) / name, args)
            print(f"{name}:", json.dumps({k: results[name].get(k) for k in ("tried", "survived", "skipped")}))
            RESULTS.write_text(json.dumps(results, indent=1) + "\n")  # a long drill's section is kept as it ends
    from common import machine_info

    results["machine"] = machine_info()
    RESULTS.write_text(json.dumps(results, indent=1) + "\n")


if __name__ == "__main__":
    main()
