import json
from pathlib import Path

import numpy as np
import pytest

from selfrefine import CLASSES
from selfrefine.config import ParamsError, load_params, parse_params
from selfrefine.errors import UserError
from selfrefine.experiments import queue as experiments
from selfrefine.experiments import studies
from selfrefine.outputs import write_csv

from conftest import ROOT


@pytest.fixture
def params():
    return load_params(ROOT / "params.yaml")


def test_each_study_is_a_grid_of_params_overrides(params) -> None:
    noise = studies.points("noise-rate", params)
    assert [p.name for p in noise] == [
        *(f"rate {r:g}" for r in params.study.noise_rates),
        *(f"{k} only" for k in params.study.noise_kinds),
    ]
    assert all(p.own_references and p.refined == "refined_2" for p in noise)
    foreign = dict(noise[-1].overrides)
    assert foreign == {
        "noise.kinds.swap": "0",
        "noise.kinds.merge": "0",
        "noise.kinds.silent": "0",
        "noise.kinds.foreign": "1",
    }
    threshold = studies.points("threshold", params)
    assert [dict(p.overrides) for p in threshold][-1] == {"refine.threshold": "adaptive"}
    assert not any(p.own_references for p in threshold)
    rounds = studies.points("iterations", params)
    assert [p.refined for p in rounds] == [f"refined_{r}" for r in range(1, params.study.rounds + 1)]
    assert [p.trained_on for p in rounds] == ["noisy", *(f"refined_{r}" for r in range(1, params.study.rounds))]
    assert {p.trained_on for p in threshold} == {"refined_1"}
    assert rounds[1].overrides == () and dict(rounds[4].overrides) == {
        "+refine.rounds.3": "refined_2",
        "+refine.rounds.4": "refined_3",
        "+refine.rounds.5": "refined_4",
    }
    with pytest.raises(UserError, match="unknown study 'thresholds'"):
        studies.points("thresholds", params)


def test_shared_references_are_trained_once_and_the_noise_points_train_their_own(params) -> None:
    threshold = studies.runs("threshold", params)
    assert list(threshold)[:2] == [("shared", "noisy"), ("shared", "clean")]
    assert len(threshold) == 2 + len(params.study.thresholds)
    noise = studies.runs("noise-rate", params)
    assert ("shared", "noisy") not in noise and ("rate 0.1", "clean") in noise
    assert len(noise) == 3 * (len(params.study.noise_rates) + len(params.study.noise_kinds))
    args = studies.set_args((("noise.rate", "0.1"),), "clean", 1, ["demucs"])
    assert args == [
        "-S",
        "noise.rate=0.1",
        "-S",
        "separate.labels=clean",
        "-S",
        "separate.seed=1",
        "-S",
        "separate.models=[demucs]",
        "summarize",
    ]


@pytest.mark.parametrize(
    "block, message",
    [
        ({"noise_kinds": ["swap", "fake"]}, "study.noise_kinds: unknown kind 'fake'"),
        ({"thresholds": [0.5, 1.5]}, "study.thresholds: 1.5"),
        ({"models": ["umx"]}, "study.models: 'umx'"),
        ({"noise_rates": [1.2]}, "study.noise_rates: 1.2"),
        ({"rounds": 0}, "study.rounds"),
    ],
)
def test_a_bad_study_grid_is_one_line(block: dict, message: str) -> None:
    import yaml

    raw = yaml.safe_load((ROOT / "params.yaml").read_text())
    raw["study"].update(block)
    with pytest.raises(ParamsError, match=message):
        parse_params(raw, "params.yaml")


def test_the_stopping_rule_sees_only_the_share_of_labels_changed() -> None:
    labels = {"1": {"changed_share": 0.3}, "2": {"changed_share": 0.05}, "3": {"changed_share": 0.01}}
    assert studies.stopping_round(labels, 0.02) == "3"
    assert studies.stopping_round(labels, 0.1) == "2"
    assert studies.stopping_round(labels, 0.001) == "3", "none settles: the last round"


def _kept(study: str, params, refined_shift: dict[str, float]) -> None:
    """Kept scores of every run of ``study`` (clean 2 dB above noisy, refined as given) and label metrics."""
    rng = np.random.default_rng(0)
    shift = {"noisy": 0.0, "clean": 2.0}
    rows = []
    for (point, table), _ in studies.runs(study, params).items():
        d = shift.get(table) if point == "shared" or table in shift else refined_shift[point]
        rows += [
            {
                "point": point,
                "labels": table,
                "seed": k,
                "song": f"s{j}",
                "source": c,
                "global_sdr": 1 + d + 0.2 * k + 0.3 * rng.normal(),
                "sdr": 1,
            }  # fmt: skip
            for k in range(2)
            for j in range(6)
            for c in CLASSES
        ]
    folder = Path("metrics/studies") / study
    write_csv(folder / "demucs.csv", rows, studies.COLUMNS)
    changed = {p.name: 0.3 / (i + 1) ** 2 for i, p in enumerate(studies.points(study, params))}
    labels = {
        p.name: {
            "changed_share": changed[p.name],
            "classifier_exact_match": 0.8,
            "accuracy_noisy": 0.7,
            "accuracy_trained_on": 0.7,
            "accuracy_refined": 0.9 - 0.01 * i,
            "precision": 0.9,
            "recall": 0.95,
            "clean_wrongly_changed": 3,
        }
        for i, p in enumerate(studies.points(study, params))
    }
    (folder / "labels.json").write_text(json.dumps(labels))
    batch = {"stamp": "20260101-000000", "experiments": 14, "queued": "2026-01-01T00:00:00",
             "last_finished": "2026-01-01T01:00:00", "minutes": 60.0}  # fmt: skip
    (folder / "batch.json").write_text(json.dumps(batch))


def test_tabulate_writes_the_json_plot_and_docs_section_from_the_kept_files(
    tmp_path: Path, monkeypatch, params
) -> None:
    monkeypatch.chdir(tmp_path)
    Path("docs").mkdir()
    Path("docs/studies.md").write_text("a\n<!-- study:iterations:start -->\nold\n<!-- study:iterations:end -->\nb\n")
    shift = {"1": 1.0, "2": 2.0, "3": 2.0, "4": 0.0, "5": -1.0}
    _kept("iterations", params, shift)
    result = studies.tabulate(params, "iterations")
    assert json.loads(Path("metrics/studies/iterations.json").read_text()) == json.loads(json.dumps(result))
    demucs = {e["point"]: e["models"]["demucs"] for e in result["points"]}
    assert demucs["2"]["gap_closed"]["mean"] == pytest.approx(1.0, abs=0.15)
    assert demucs["1"]["gap_closed"]["ci_low"] < 0.5 < demucs["1"]["gap_closed"]["ci_high"]
    assert demucs["5"]["refined_minus_noisy"]["ci_high"] < 0 < demucs["2"]["refined_minus_noisy"]["ci_low"]
    assert demucs["3"]["seeds"] == [0, 1] and demucs["3"]["songs"] == 6
    assert result["stopping_rule"] == {"changed_below": 0.02, "round": "4"}  # 0.3/9 = 0.033, 0.3/16 = 0.019
    doc = Path("docs/studies.md").read_text()
    assert doc.startswith("a\n<!-- study:iterations:start -->\n![iterations](../plots/studies/iterations.png)")
    assert "picks round 4; the truth would pick round 1" in doc
    assert "demucs at 4 (the point chosen without the truth): refined − noisy = " in doc, "the rule's pick leads"
    assert result["picked"] == "4" and "(exploratory, Holm-adjusted over them)" in doc and "above 0 at 2" in doc
    assert all("p_holm" in e["models"]["demucs"]["refined_minus_noisy"] for e in result["points"])
    assert "is the best of 5 points and so overstates that point" in doc, "a maximum over points is called one"
    assert "60.0 min." in doc and "queue worker" not in doc, "a batch that recorded no workers states none"
    assert "old" not in doc and doc.endswith("<!-- study:iterations:end -->\nb\n")
    assert Path("plots/studies/iterations.png").stat().st_size > 1000


def test_tabulate_names_what_is_missing(tmp_path: Path, monkeypatch, params) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(UserError, match="run `selfrefine study threshold` first"):
        studies.tabulate(params, "threshold")
    _kept("threshold", params, dict.fromkeys(map(str, params.study.thresholds), 1.0))
    rows = Path("metrics/studies/threshold/demucs.csv").read_text().splitlines()
    Path("metrics/studies/threshold/demucs.csv").write_text("\n".join(r for r in rows if not r.startswith("0.9,")))
    with pytest.raises(UserError, match="no runs of refined_2 at point '0.9'"):
        studies.tabulate(params, "threshold")


REQUIRED = ["metrics/separation/demucs.json"]


def _fake_queue(
    monkeypatch, state: dict, finished: set, on_start=None, logs: dict | None = None, workers: list | None = None
) -> list:
    """A stand-in for the dvc commands run_batch uses: ``state`` is each experiment's queue status, ``finished``
    the experiments ``dvc exp show`` lists as done, ``on_start`` what ``dvc queue start`` does, ``workers`` (one
    item: how many are alive) the status's worker line. Returns the calls."""
    done = {"metrics": {REQUIRED[0]: {}}, "timestamp": "2026-01-01T00:00:00"}
    calls = []

    def dvc(*args):
        calls.append(args)
        if args == ("queue", "status"):
            tail = f"\nWorker status: {workers[0]} active, 0 idle\n" if workers else ""
            return "".join(f"x  {exp}  {word}\n" for exp, word in state.items()) + tail
        if args[:2] == ("exp", "show"):
            return json.dumps([{"rev": "r-" + exp, "name": exp, "data": done} for exp in sorted(finished)])
        if args[:2] == ("exp", "run"):
            state[args[-1]] = "Queued"
        if args[:2] == ("queue", "start") and on_start:
            on_start()
        if args[:2] == ("queue", "logs"):
            return (logs or {}).get(args[2], "")
        return ""

    monkeypatch.setattr(experiments, "dvc", dvc)
    monkeypatch.setattr(experiments.time, "sleep", lambda s: None)
    return calls


def test_a_batch_queues_only_what_has_not_finished_and_names_the_resume_on_failure(monkeypatch) -> None:
    required = REQUIRED
    state: dict[str, str] = {}  # experiment -> queue status; a: finished in an earlier run of the batch
    finished = {"study-a-1"}

    def start():  # the worker runs what is queued: b succeeds, c fails
        for exp, word in state.items():
            if word == "Queued":
                state[exp] = "Failed" if exp.startswith("study-c") else "Success"
                finished.update({exp} - {"study-c-1"})

    calls = _fake_queue(monkeypatch, state, finished, start)
    names = {"a": "study-a-1", "b": "study-b-1"}
    found = experiments.run_batch(names, {"a": ["A"], "b": ["B"]}, required, 1, "resume")
    assert {k: v["rev"] for k, v in found.items()} == {"a": "r-study-a-1", "b": "r-study-b-1"}
    assert [c for c in calls if c[:2] == ("exp", "run")] == [("exp", "run", "--queue", "B", "--name", "study-b-1")]
    with pytest.raises(experiments.DvcError, match=r"(?s)1 of 2 experiments failed:\n  study-c-1: .*RESUME HINT"):
        experiments.run_batch(
            {"a": "study-a-1", "c": "study-c-1"}, {"a": ["A"], "c": ["C"]}, required, 1, "RESUME HINT"
        )


def test_a_batch_reports_every_failed_experiment_with_its_reason_once_the_rest_have_run(monkeypatch) -> None:
    state = {"e-1": "Queued", "e-2": "Running", "e-3": "Queued", "e-4": "Queued"}
    logs = {
        "e-1": "Running stage 'index':\nerror: data/x: folder missing; point data.root at it\nERROR: failed to reproduce",
        "e-3": "Traceback (most recent call last):\n  File 'x'\nRuntimeError: out of memory\nERROR: failed",
    }
    finished: set = set()
    polls = []

    def status_moves():  # each poll, what was running finishes, what was queued runs (e-1 and e-3 fail at once)
        polls.append(dict(state))
        for exp, word in list(state.items()):
            if word == "Running":
                state[exp] = "Success"
                finished.add(exp)
            elif word == "Queued":
                state[exp] = "Failed" if exp in ("e-1", "e-3") else "Running"

    _fake_queue(monkeypatch, state, finished, logs=logs)
    monkeypatch.setattr(experiments.time, "sleep", lambda s: status_moves())
    names = {k: f"e-{k}" for k in range(1, 5)}
    with pytest.raises(experiments.DvcError) as err:
        experiments.run_batch(names, {k: [] for k in names}, REQUIRED, 1, "RESUME")
    assert str(err.value).splitlines() == [
        "2 of 4 experiments failed:",
        "  e-1: error: data/x: folder missing; point data.root at it (`dvc queue logs e-1`)",
        "  e-3: RuntimeError: out of memory (`dvc queue logs e-3`)",
        "Fix the cause, then: RESUME",
    ]
    assert finished == {"e-2", "e-4"}, "the batch waits for the experiments still queued or running"
    assert polls[1]["e-1"] == "Failed" and polls[1]["e-4"] == "Running", "it did not stop at the first failure"


def test_a_refused_point_is_a_result_and_a_refused_reference_an_error(tmp_path: Path, monkeypatch, params) -> None:
    monkeypatch.chdir(tmp_path)
    Path("docs").mkdir()
    Path("docs/studies.md").write_text("<!-- study:threshold:start -->\n<!-- study:threshold:end -->\n")
    _kept("threshold", params, dict.fromkeys(map(str, params.study.thresholds), 1.0))
    rows = Path("metrics/studies/threshold/demucs.csv").read_text().splitlines()
    Path("metrics/studies/threshold/demucs.csv").write_text("\n".join(r for r in rows if not r.startswith("0.9,")))
    labels = json.loads(Path("metrics/studies/threshold/labels.json").read_text())
    labels["0.9"]["separators_refused"] = "the pool of 'bass' is empty"
    Path("metrics/studies/threshold/labels.json").write_text(json.dumps(labels))
    result = studies.tabulate(params, "threshold")
    by_point = {e["point"]: e for e in result["points"]}
    assert by_point["0.9"]["refused"] == "the pool of 'bass' is empty" and by_point["0.9"]["models"] == {}
    assert by_point["0.9"]["labels"]["accuracy_refined"] == labels["0.9"]["accuracy_refined"]
    assert "gap_closed" in by_point["0.5"]["models"]["demucs"]
    doc = Path("docs/studies.md").read_text()
    assert "| 0.9 |" in doc and "could not train" in doc
    assert "At 0.9 the method breaks: no separator could be trained on the refined labels (the pool of 'bass'" in doc
    assert Path("plots/studies/threshold.png").stat().st_size > 1000
    grid = studies.points("threshold", params)
    assert studies._refused_points(grid, {("0.9", "refined_2", 1): "empty"}) == {"0.9": "empty"}
    with pytest.raises(UserError, match="the noisy table of point 'shared' .*cannot be trained on: empty"):
        studies._refused_points(grid, {("shared", "noisy", 0): "empty"})


def test_a_batch_keeps_a_stage_refusal_as_a_result_but_raises_on_a_crash(monkeypatch) -> None:
    required = REQUIRED
    state = {"study-a-1": "Success", "study-r-1": "Failed", "study-x-1": "Failed"}
    logs = {
        "study-r-1": "Running stage 'train@demucs':\nerror: the pool of 'bass' is empty\nERROR: failed to reproduce\n",
        "study-x-1": "Traceback (most recent call last):\nerror: odd\nRuntimeError: boom\n",
    }

    def start():  # a requeued experiment fails again, the same way
        state.update({exp: "Failed" for exp, word in state.items() if word == "Queued"})

    calls = _fake_queue(monkeypatch, state, {"study-a-1"}, start, logs)
    refused: dict = {}
    found = experiments.run_batch(
        {"a": "study-a-1", "r": "study-r-1"}, {"a": ["A"], "r": ["R"]}, required, 1, "resume", refusals=refused
    )
    assert list(found) == ["a"] and refused == {"r": "the pool of 'bass' is empty"}
    assert not [c for c in calls if c[:2] == ("exp", "run")], "a refused experiment is not queued again"
    with pytest.raises(experiments.DvcError, match="study-x-1: RuntimeError: boom"):
        experiments.run_batch({"x": "study-x-1"}, {"x": ["X"]}, required, 1, "resume", refusals={})
    with pytest.raises(experiments.DvcError, match="study-r-1: error: the pool of 'bass' is empty"):
        experiments.run_batch({"r": "study-r-1"}, {"r": ["R"]}, required, 1, "resume")
    assert experiments.run_batch({}, {}, required, 1, "resume") == {}


def test_an_experiment_dvc_exp_show_calls_running_is_not_finished_whatever_the_queue_says(monkeypatch) -> None:
    node = {"rev": "r", "name": "e", "data": {"metrics": {"m": {}}}}  # a running checkout holds baseline metrics
    shown = [{"name": "e", "executor": {"state": "running"}, "revs": [node]}]
    monkeypatch.setattr(experiments, "dvc", lambda *a: json.dumps(shown))
    assert experiments.finished({"k": "e"}, ["m"], {}) == {}
    shown[0]["executor"]["state"] = "success"
    assert experiments.finished({"k": "e"}, ["m"], {}) == {"k": node}


def test_a_resumed_batch_keeps_the_workers_it_was_started_with() -> None:
    from datetime import datetime

    found = {"a": {"data": {"timestamp": "2026-01-01T00:30:00"}}}
    queued = datetime(2026, 1, 1)
    first = experiments.batch_times(found, queued, 2)
    assert (first["jobs"], first["minutes"]) == (2, 30.0) and first["cpus"] >= 1
    again = experiments.batch_times(found, queued, 1, {**first, "cpus": 16})
    assert (again["jobs"], again["cpus"]) == (2, 16), "the resume, run with 1 worker, keeps the batch's 2"
    assert experiments.batch_times(found, queued, 1, {"minutes": 60.0})["jobs"] == 1, "a record with no workers"


def test_a_worker_that_exits_with_work_queued_is_started_again_while_another_still_runs(monkeypatch) -> None:
    state = {"e-1": "Running", "e-2": "Running", "e-3": "Queued"}
    workers = [2]
    finished: set = set()

    def poll():  # e-1 finishes and its worker exits (as DVC's do when kombu's file broker trips); e-2 runs on
        if state["e-1"] == "Running":
            state["e-1"], workers[0] = "Success", 1
            finished.add("e-1")
        elif workers[0] == 2 and state["e-3"] == "Queued":
            state["e-3"] = "Running"
        else:
            state.update({e: "Success" for e in state})
            finished.update(state)

    calls = _fake_queue(monkeypatch, state, finished, on_start=lambda: workers.__setitem__(0, 2), workers=workers)
    monkeypatch.setattr(experiments.time, "sleep", lambda s: poll())
    names = {k: f"e-{k}" for k in (1, 2, 3)}
    found = experiments.run_batch(names, {k: [] for k in names}, REQUIRED, 2, "RESUME")
    assert set(found) == {1, 2, 3}
    starts = [c for c in calls if c[:2] == ("queue", "start")]
    assert starts == [("queue", "start", "-j", "2")] * 2, "the first start, and one for the worker that left"
    assert experiments.live_workers("x\nWorker status: 1 active, 1 idle\n") == 2
    assert experiments.live_workers("no worker line") == 0
