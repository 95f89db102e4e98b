import json
import os
from pathlib import Path

import numpy as np
import pytest

from selfrefine import CLASSES, paths
from selfrefine.config import load_params
from selfrefine.errors import UserError
from selfrefine.experiments.compare import WORLDS, tabulate
from selfrefine.experiments.queue import find_experiment
from selfrefine.experiments.report import ci_text, update_section
from selfrefine.outputs import read_csv, write_csv

from conftest import ROOT


def test_experiment_lookup_in_exp_show_json() -> None:
    shown = [
        {"rev": "workspace", "name": None, "data": {}},
        {"rev": "abc", "experiments": [{"revs": [{"rev": "def", "name": "compare-noisy-s0-1", "data": {"x": 1}}]}]},
    ]
    assert find_experiment(shown, "compare-noisy-s0-1") == {
        "rev": "def",
        "name": "compare-noisy-s0-1",
        "data": {"x": 1},
    }
    assert find_experiment(shown, "missing") is None


def test_a_generated_section_is_replaced_between_markers(tmp_path: Path) -> None:
    readme = tmp_path / "README.md"
    readme.write_text("intro\n<!-- results:start -->\nold\n<!-- results:end -->\noutro\n")
    update_section(readme, "results", "new table\n")
    assert readme.read_text() == "intro\n<!-- results:start -->\nnew table\n<!-- results:end -->\noutro\n"
    readme.write_text("no markers")
    with pytest.raises(UserError, match="markers"):
        update_section(readme, "results", "x")


def _documents() -> None:
    """The README and docs/results.md with the markers tabulate writes between (in the current folder)."""
    paths.RESULTS_DOC.parent.mkdir(exist_ok=True)
    paths.RESULTS_DOC.write_text("<!-- results:start -->\n<!-- results:end -->\n")
    paths.README.write_text("<!-- headline:start -->\n<!-- headline:end -->\n")


def _results() -> str:
    return paths.RESULTS_DOC.read_text()


def test_a_running_experiment_is_not_read_even_though_exp_show_lists_metrics(monkeypatch) -> None:
    from selfrefine.experiments import queue as experiments

    names = {("noisy", 0): "compare-noisy-s0-1", ("clean", 0): "compare-clean-s0-1"}
    record = {"metrics": {"metrics/separation/demucs.json": {"data": {}}}, "timestamp": "2026-01-01T00:00:00"}
    shown = [{"rev": exp, "name": exp, "data": record} for exp in names.values()]
    outputs = {
        ("queue", "status"): "aaa  compare-noisy-s0-1  Success\nbbb  compare-clean-s0-1  Running\n",
        ("exp", "show", "--json", "--all-commits"): json.dumps(shown),
    }
    monkeypatch.setattr(experiments, "dvc", lambda *args: outputs[args])
    required = ["metrics/separation/demucs.json"]
    assert set(experiments.finished(names, required, experiments.queue_status(names))) == {("noisy", 0)}
    assert experiments.finished(names, ["metrics/separation/xumx.json"], {}) == {}


def _kept_scores(folder: Path, shift: dict[str, float]) -> None:
    rng = np.random.default_rng(0)
    rows = [
        {
            "labels": t,
            "seed": k,
            "song": f"song_{j}",
            "source": c,
            "global_sdr": 2 + d + 0.3 * k + rng.normal(),
            "sdr": 1,
        }
        for t, d in shift.items()
        for k in range(3)
        for j in range(5)
        for c in CLASSES
    ]
    for model in ("demucs", "xumx"):
        write_csv(folder / f"{model}.csv", rows, ["labels", "seed", "song", "source", "global_sdr", "sdr"])


def test_tabulate_writes_intervals_tables_words_and_plot_from_the_kept_scores(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    _documents()
    _kept_scores(Path("metrics/compare"), {"noisy": 0.0, "refined_2": 5.0, "clean": 5.0})
    table = tabulate(load_params(ROOT / "params.yaml"))
    demucs = json.loads(Path("metrics/compare.json").read_text())["models"]["demucs"]
    assert demucs == json.loads(json.dumps(table["models"]["demucs"]))
    for key in ("noisy", "refined_2", "clean", "refined_minus_noisy", "refined_minus_clean", "gap_closed"):
        assert {"mean", "ci_low", "ci_high"} <= set(demucs[key]) and demucs[key]["ci_low"] <= demucs[key]["ci_high"]
    assert demucs["refined"] == "refined_2" and demucs["refined_minus_noisy"]["ci_low"] > 4
    assert demucs["replicates"] == 3 and demucs["vary"] == "separators" and demucs["coverage_checked"]
    spread = demucs["run_spread"]["noisy"]
    assert spread["runs"] == 3 and spread["ci_low"] < spread["variance"] < spread["ci_high"]
    assert table["method"].startswith("crossed two-way random effects")
    primary = [c["contrast"] for c in demucs["contrasts"] if c["primary"]]
    assert primary == ["refined_2 - noisy", "refined_2 - clean"], "compare.primary, in its order"
    exploratory = [c for c in demucs["contrasts"] if not c["primary"]]
    assert {c["contrast"] for c in exploratory} == {"clean - noisy"} and "p_holm" in exploratory[0]
    results = _results()
    assert "| demucs | refined_2 | **" in results and "primary: refined_2 − noisy = " in results
    assert "refined_2 better than noisy" in results, "a primary interval above 0 is stated as an effect"
    assert "a difference between refined_2 and clean is not established" in results, "one that includes 0 is not"
    assert "exploratory: clean − noisy = " in results and "Holm p = " in results
    assert "Run-to-run spread: the variance of one run's mean global SDR" in results
    headline = paths.README.read_text()
    assert "| demucs | " in headline and ci_text(demucs["refined_minus_noisy"]) in headline
    assert "on the clean test songs of the generated world `synth` (synthesised instruments" in headline
    assert Path("plots/compare.png").stat().st_size > 1000


def test_tables_run_on_different_seeds_are_refused(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    _kept_scores(Path("metrics/compare"), {"noisy": 0.0, "clean": 1.0})
    rows = [r for r in read_csv("metrics/compare/demucs.csv") if not (r["labels"] == "clean" and r["seed"] == "2")]
    write_csv(Path("metrics/compare/demucs.csv"), rows, list(rows[0]))
    with pytest.raises(UserError, match="same seeds and songs"):
        tabulate(load_params(ROOT / "params.yaml"))


def test_a_condition_is_a_table_with_checked_params_overrides() -> None:
    import yaml

    from selfrefine.experiments.compare import parse_condition

    params = load_params(ROOT / "params.yaml")
    raw = yaml.safe_load((ROOT / "params.yaml").read_text())
    c = parse_condition("refined_2@refine.threshold=adaptive", params, raw)
    assert (c.table, c.overrides) == ("refined_2", (("refine.threshold", "adaptive"),))
    assert c.set_args(1)[:4] == ["-S", "separate.labels=refined_2", "-S", "seed=1"], "a run replicates the pipeline"
    assert c.set_args(1, "separators") == [
        "-S",
        "separate.labels=refined_2",
        "-S",
        "separate.seed=1",
        "-S",
        "refine.threshold=adaptive",
    ]
    assert c.slug == "refined_2-refine-threshold-adaptive"
    assert parse_condition("noisy", params, raw).overrides == ()
    alias = parse_condition("adaptive", params, raw)
    assert (alias.name, alias.table) == ("refined_2@refine.threshold=adaptive", "refined_2"), "an alias is expanded"
    filtered = parse_condition("filtered_demucs@filter.models=[demucs]", params, raw)
    assert filtered.set_args(0)[:2] == ["-S", "separate.labels=filtered_demucs"], "an override may add the table"
    for text, message in [
        ("refined_9", "unknown label table 'refined_9'"),
        ("filtered_demucs", "unknown label table 'filtered_demucs'"),
        ("refined_2@separate.keep=0", "separate.keep"),
        ("refined_2@threshold", "expected TABLE@key=value"),
        ("refined_2@separate.seed=3", "compare sets separate.seed itself"),
        ("refined_2@refine.threshold=1.5", "threshold"),
        ("refined_2@refine.threshhold=0.9", "threshhold"),
        ("refined_2@separate.pool=mine", "pool"),
    ]:
        with pytest.raises(UserError, match=message):
            parse_condition(text, params, raw)


def test_an_ablation_batch_adds_its_rows_and_keeps_the_earlier_batch(tmp_path: Path, monkeypatch) -> None:
    from selfrefine.experiments import compare

    monkeypatch.chdir(tmp_path)
    _documents()
    _kept_scores(Path("metrics/compare"), {"noisy": 0.0, "refined_2": 1.0, "clean": 1.0})
    old_batch = {
        "experiments": {
            f"{t}/seed{k}": f"compare-{t}-s{k}-20260101-000000" for t in ("noisy", "clean") for k in range(3)
        },
        "queued": "2026-01-01T00:00:00",
        "last_finished": "2026-01-01T01:00:00",
        "minutes": 60.0,
    }
    Path("metrics/compare/batch.json").write_text(json.dumps(old_batch))
    ablation = "refined_2@refine.threshold=0.9"
    song_rows = [{"song": f"song_{j}", "source": c, "global_sdr": 3.5, "sdr": 1} for j in range(5) for c in CLASSES]
    quality = {"label_accuracy": 0.9, "detection_precision": 0.8, "detection_recall": 0.7, "thresholds": {}}
    monkeypatch.setattr(
        compare,
        "run_batch",
        lambda names, *rest: {
            key: {"rev": exp, "data": {"timestamp": "2026-01-02T00:30:00"}} for key, exp in names.items()
        },
    )
    monkeypatch.setattr(compare, "song_scores", lambda rev, model: song_rows)
    monkeypatch.setattr(compare, "tracked_roots", lambda roots: None)
    monkeypatch.setattr(compare, "_label_quality", lambda rev, table: quality if rev else None)
    with pytest.raises(UserError, match=r"noisy runs with seeds 0..2 \(vary: pipeline\)"):
        compare.run_comparison(load_params(ROOT / "params.yaml"), [ablation], 3, params_path=ROOT / "params.yaml")
    with pytest.raises(UserError, match="vary: separators, this batch with pipeline; their runs are not paired"):
        compare.run_comparison(load_params(ROOT / "params.yaml"), ["noisy"], 3, params_path=ROOT / "params.yaml")
    table = compare.run_comparison(
        load_params(ROOT / "params.yaml"),
        [ablation],
        3,
        stamp="20260102-000000",
        params_path=ROOT / "params.yaml",
        vary="separators",
    )
    rows = read_csv("metrics/compare/demucs.csv")
    assert [sum(r["labels"] == t for r in rows) for t in ("noisy", "refined_2", "clean", ablation)] == [60] * 4
    batch = json.loads(Path("metrics/compare/batch.json").read_text())
    assert [b["stamp"] for b in batch["batches"]] == ["20260101-000000", "20260102-000000"]
    assert batch["batches"][1] | {"minutes": 30.0} == batch["batches"][1] and len(batch["experiments"]) == 9
    demucs = table["models"]["demucs"]
    assert demucs["refined"] == "refined_2" and "gap_closed" in demucs["differences"][ablation]
    assert table["label_quality"] == {ablation: quality}
    results = _results()
    assert f"| demucs | {ablation} | **" in results and "| 90.0 % |" in results and "queued at 2026-01-01" in results
    assert "2026-01-02T00:30:00: 30.0 min (1 queue worker(s), " in results, "the new batch states what it ran on"
    assert "60.0 min." in results, "an old batch that recorded no workers states none"


def test_without_noisy_runs_there_is_nothing_to_set_against(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    _kept_scores(Path("metrics/compare"), {"refined_2": 0.0, "clean": 1.0})
    with pytest.raises(UserError, match="no noisy runs"):
        tabulate(load_params(ROOT / "params.yaml"))


@pytest.mark.parametrize(
    "kept", ["metrics/compare", "metrics/compare-separator-seeds", "metrics/compare-pools", "metrics/worlds/sampled"]
)
def test_the_committed_intervals_are_recomputed_from_the_committed_per_song_scores(
    tmp_path: Path, monkeypatch, kept: str
) -> None:
    import shutil

    summary = ROOT / kept / "compare.json" if kept != "metrics/compare" else ROOT / "metrics/compare.json"
    if not (ROOT / kept / "demucs.csv").is_file():
        pytest.skip(f"{kept}: no kept scores committed")
    committed = json.loads(summary.read_text())
    shutil.copytree(ROOT / kept, tmp_path / "metrics/compare")
    monkeypatch.chdir(tmp_path)
    _documents()
    table = json.loads(json.dumps(tabulate(load_params(ROOT / "params.yaml"))))
    for model, entry in committed["models"].items():
        for key in ("refined_minus_noisy", "refined_minus_clean", "gap_closed", "noisy", "clean"):
            assert table["models"][model][key] == pytest.approx(entry[key], abs=1e-9), (model, key)
        ours, theirs = ([(c["contrast"], c["global"]["ci_low"], c["global"]["ci_high"]) for c in e["contrasts"]]
                        for e in (table["models"][model], entry))  # fmt: skip
        assert [c[0] for c in ours] == [c[0] for c in theirs]
        assert [v for c in ours for v in c[1:]] == pytest.approx([v for c in theirs for v in c[1:]], abs=1e-9)


def test_injected_noise_conditions_are_set_against_clean_per_source(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    _documents()
    fn, fp = "noisy@noise.kinds.swap=0@noise.kinds.merge=1", "noisy@noise.kinds.swap=0@noise.kinds.silent=1"
    _kept_scores(Path("metrics/compare"), {"noisy": 0.0, "clean": 5.0, fn: 0.0, fp: 4.0})
    against = tabulate(load_params(ROOT / "params.yaml"))["models"]["xumx"]["against_clean"]
    assert list(against["conditions"]) == ["noisy", fn, fp]
    assert against["conditions"][fn]["global"]["ci_high"] < -4 < against["conditions"][fp]["global"]["ci_low"]
    assert set(against["conditions"][fp]) == {"global", *CLASSES}
    assert against["pairs"][f"{fn} − {fp}"]["vocals"]["ci_high"] < -1
    results = _results()
    assert "| xumx | merge-only − clean | " in results and f"| xumx | merge-only − {fp} | " in results
    assert f"- merge-only: `{fn}`" in results, "an alias is explained where it is shown"


def test_noisy_labels_with_a_robust_loss_are_a_method_set_against_noisy_not_injected_noise(
    tmp_path: Path, monkeypatch
) -> None:
    monkeypatch.chdir(tmp_path)
    _documents()
    robust = "noisy@separators.demucs.train.truncate_quantile=0.8"
    fn = "noisy@noise.kinds.swap=0@noise.kinds.merge=1"
    _kept_scores(Path("metrics/compare"), {"noisy": 0.0, "clean": 4.0, robust: 2.0, fn: 1.0})
    demucs = tabulate(load_params(ROOT / "params.yaml"))["models"]["demucs"]
    assert demucs["differences"][robust]["gap_closed"]["mean"] == pytest.approx(0.5, abs=0.1)
    assert list(demucs["against_clean"]["conditions"]) == ["noisy", fn] and fn not in demucs["differences"]


def test_condition_aliases_are_validated_with_params() -> None:
    import yaml

    from selfrefine.config import ParamsError, parse_params

    raw = yaml.safe_load((ROOT / "params.yaml").read_text())
    for bad in ({"Merge Only": "noisy@noise.kinds.merge=1"}, {"merge": "noisy"}, {"x" * 21: "noisy@a=1"}):
        raw["compare"]["aliases"] = bad
        with pytest.raises(ParamsError, match="compare.aliases"):
            parse_params(raw)


def test_a_data_root_queued_experiments_cannot_see_stops_before_anything_is_queued(tmp_path: Path, monkeypatch) -> None:
    import subprocess

    from selfrefine.experiments.queue import tracked_roots

    monkeypatch.chdir(tmp_path)
    subprocess.run(["git", "init", "-q"], check=True)
    Path("dvc.yaml").write_text("stages:\n  generate:\n    cmd: x\n    outs:\n      - data/generated\n")
    for folder in ("data/generated/test", "data/musdb18hq/train", "data/committed"):
        Path(folder).mkdir(parents=True)
    Path("data/committed/stems.csv").write_text("path,label\n")
    subprocess.run(["git", "add", "data/committed"], check=True)
    outside = tmp_path.parent / "library-outside"
    tracked_roots(["data/generated", "data/generated/test", "data/committed", str(outside)])
    with pytest.raises(UserError, match=r"^data/musdb18hq: tracked by neither git nor DVC.*`dvc add data/musdb18hq"):
        tracked_roots(["data/generated", "data/musdb18hq"])
    with pytest.raises(UserError, match="data/musdb18hq/train: tracked by neither"):
        tracked_roots([str(tmp_path / "data/musdb18hq/train")])
    Path("data/musdb18hq.dvc").write_text("outs:\n- path: musdb18hq\n")
    tracked_roots(["data/musdb18hq", "data/musdb18hq/train"])


def test_the_shards_of_a_batch_split_it_without_overlap(tmp_path: Path, monkeypatch) -> None:
    from typer.testing import CliRunner

    from selfrefine.cli import app
    from selfrefine.experiments import compare

    monkeypatch.chdir(tmp_path)
    ran = []
    monkeypatch.setattr(compare, "run_batch", lambda names, args, *rest: ran.append((dict(names), dict(args))) or {})
    monkeypatch.setattr(compare, "tracked_roots", lambda roots: None)
    params = load_params(ROOT / "params.yaml")
    labels = ["noisy", "refined_2", "clean"]
    shards = [compare.run_comparison(params, labels, 3, "20260101-000000", shard=(i, 2)) for i in range(2)]
    names = [set(s["experiments"]) for s in shards]
    assert not names[0] & names[1] and len(names[0] | names[1]) == 12 and abs(len(names[0]) - len(names[1])) <= 1
    assert {n for batch, _ in ran for n in batch.values()} == names[0] | names[1]
    assert all(a[-1] == "summarize" for _, args in ran for a in args.values())
    nested = {key: a for _, args in ran for key, a in args.items() if len(key) == 3}
    assert sorted(nested) == [("refined_2", k, 1) for k in range(3)], "compare.separator_runs: 2 of the judged table"
    assert all(a[:6] == ["-S", "separate.labels=refined_2", "-S", f"seed={k}", "-S", f"separate.seed={1000 + k}"]
               for (_, k, _), a in nested.items())  # fmt: skip
    assert not Path("metrics").exists(), "a shard keeps nothing"
    for shard, stamp, message in [
        ("2/2", "20260101-000000", "expected I/N with 0 <= I < N"),
        ("a/2", "20260101-000000", "expected I/N"),
        ("0/2", None, "give every machine the same --stamp"),
    ]:
        args = ["compare", "--shard", shard, "--params", str(ROOT / "params.yaml")] + (["--stamp", stamp] * bool(stamp))
        result = CliRunner().invoke(app, args)
        assert result.exit_code == 1 and message in result.output, result.output


def test_a_dvc_command_that_does_not_answer_is_a_failure_the_batch_can_retry(tmp_path: Path, monkeypatch) -> None:
    import subprocess

    from selfrefine.experiments import queue

    script = tmp_path / "dvc"
    script.write_text("#!/bin/sh\nsleep 30\n")
    script.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}:{__import__('os').environ['PATH']}")
    monkeypatch.setattr(queue, "DVC_TIMEOUT", 0.5)
    with pytest.raises(queue.DvcError, match=r"dvc exp show --json did not answer in 0.5 s"):
        queue.dvc("exp", "show", "--json")
    assert subprocess.run(["pgrep", "-f", str(script)], capture_output=True).returncode == 1, "the hung one is killed"


def test_further_separator_trainings_split_the_spread_between_refinement_and_separators(
    tmp_path: Path, monkeypatch
) -> None:
    from selfrefine.experiments import compare

    monkeypatch.chdir(tmp_path)
    _documents()
    rng = np.random.default_rng(1)
    replicate = {k: rng.normal(0, 1.0) for k in range(4)}  # the refinement's spread: 1 dB² between replicates

    def scores(rev: str, model: str) -> list[dict]:
        seed = int(rev.split("-s")[1].split("-")[0])
        level = 2.0 + ("refined_2" in rev or "clean" in rev) + replicate[seed] + 0.01 * rng.normal()
        return [{"song": f"song_{j}", "source": c, "global_sdr": level + 0.1 * j, "sdr": 1}
                for j in range(5) for c in CLASSES]  # fmt: skip

    monkeypatch.setattr(
        compare, "run_batch", lambda names, *rest: {key: {"rev": exp, "data": {}} for key, exp in names.items()}
    )
    monkeypatch.setattr(compare, "song_scores", scores)
    monkeypatch.setattr(compare, "tracked_roots", lambda roots: None)
    monkeypatch.setattr(compare, "_label_quality", lambda rev, table: None)
    params = load_params(ROOT / "params.yaml")
    labels = ["noisy", "refined_2", "clean"]
    table = compare.run_comparison(params, labels, 4, "20260101-000000", params_path=ROOT / "params.yaml")
    nested = read_csv("metrics/compare/separators/demucs.csv")
    assert {(r["seed"], r["training"]) for r in nested} == {(str(k), "1") for k in range(4)}
    split = table["models"]["demucs"]["variance_split"]
    assert split["table"] == "refined_2" and (split["replicates"], split["separator_runs"]) == (4, 2)
    assert split["refinement"] > 0.1 > 0.01 > split["separators"], "the replicates differ, their trainings hardly"
    assert split["share_refinement"]["ci_low"] > 0.9 and split["separators_ci"][0] < split["separators"]
    assert "Where refined_2's run-to-run spread comes from: 4 pipeline replicates x 2" in _results()
    again = compare.run_comparison(params, ["refined_2"], 4, "20260102-000000", params_path=ROOT / "params.yaml",
                                   vary="pipeline")  # fmt: skip
    assert "variance_split" in again["models"]["demucs"], "a rerun of the judged table reruns its further trainings"
    single = json.loads(json.dumps(__import__("dataclasses").asdict(params)))
    single["compare"]["separator_runs"] = 1
    Path("one.yaml").write_text(json.dumps(single))
    compare.run_comparison(load_params(Path("one.yaml")), ["refined_2"], 4, "20260103-000000", vary="pipeline")
    assert not Path("metrics/compare/separators/demucs.csv").exists(), "their first trainings were replaced"
    assert "variance_split" not in json.loads(Path("metrics/compare.json").read_text())["models"]["demucs"]


def test_a_batch_that_grew_after_its_first_record_does_not_claim_its_span_as_wall_time() -> None:
    from datetime import datetime

    from selfrefine.experiments.queue import batch_times
    from selfrefine.experiments.report import batch_text

    found = {k: {"data": {"timestamp": f"2026-01-01T0{k}:00:00"}} for k in range(3)}
    queued = datetime(2026, 1, 1)
    first = batch_times(dict(list(found.items())[:2]), queued, 1)
    assert "resumed" not in first and "min (1 queue worker(s)" in batch_text({**first, "experiments": 2})
    grown = batch_times(found, queued, 2, {**first, "experiments": 2})
    assert grown["resumed"] and grown["jobs"] == 1 and grown["minutes"] == 120.0
    assert "not its wall time" in batch_text({**grown, "experiments": 3})
    again = batch_times(found, queued, 1, {**grown, "experiments": 3})
    assert again["resumed"], "once resumed, always"


def test_queue_workers_side_by_side_divide_the_cores_between_them(tmp_path: Path, monkeypatch) -> None:
    """Two workers each running torch on every core slow each other far more than twice (measured: an audit 10x
    slower beside a training stage): ``dvc queue start -j N`` gives each worker's stages 1/N of the cores."""
    from selfrefine.experiments import queue

    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    assert queue.worker_threads(1, cpus=2) == {}
    assert queue.worker_threads(2, cpus=2) == {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    assert queue.worker_threads(3, cpus=16)["OMP_NUM_THREADS"] == "5"
    script = tmp_path / "dvc"  # a dvc that records the environment its queue workers would inherit
    script.write_text(f'#!/bin/sh\necho "$OMP_NUM_THREADS" > {tmp_path / "threads"}\n')
    script.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}:{os.environ['PATH']}")
    queue.dvc("queue", "start", "-j", "2")
    assert (tmp_path / "threads").read_text().strip() == str(max(1, (os.cpu_count() or 1) // 2))
    monkeypatch.setenv("OMP_NUM_THREADS", "7")  # the user's own setting wins
    queue.dvc("queue", "start", "-j", "2")
    assert (tmp_path / "threads").read_text().strip() == "7"


def _contrast(name: str, global_: tuple, **sources: tuple) -> dict:
    def ci(t: tuple) -> dict:
        return {"mean": t[0], "ci_low": t[1], "ci_high": t[2], "p": 0.5}

    return {"contrast": name, "primary": False, "global": ci(global_), **{s: ci(v) for s, v in sources.items()}}


@pytest.mark.parametrize(
    ("versus", "against", "says"),
    [
        ((0.0, -0.1, 0.1), (0.3, 0.2, 0.4), "vocals is data selection (the control gains as much)"),
        ((0.3, 0.2, 0.4), (0.0, -0.1, 0.1), "beats the control on vocals too, so its gain over clean is more than"),
        ((0.1, -0.1, 0.3), (0.2, -0.1, 0.5), "selected − clean = 0.20 dB [-0.10, 0.50]."),
    ],
)
def test_the_selection_control_reads_each_source_that_refined_labels_move_against_clean(
    versus: tuple, against: tuple, says: str
) -> None:
    from selfrefine.experiments.compare_docs import selection_text

    flat = (0.0, -0.1, 0.1)
    entry = {
        "refined": "refined_2",
        "refined_minus_clean": {"mean": 0.0, "ci_low": -0.1, "ci_high": 0.1},
        "contrasts": [
            _contrast("refined_2 - clean", flat, bass=flat, vocals=(0.3, 0.2, 0.4)),
            _contrast("refined_2 - selected", flat, bass=flat, vocals=versus),
            _contrast(
                "clean - selected", flat, bass=flat, vocals=(-against[0], -against[2], -against[1])
            ),  # kept the other way
        ],
    }
    text = selection_text(entry, {})
    assert text.startswith("selection control (clean labels on only the stems refined_2's pools keep)")
    assert says in text and "bass:" not in text, text  # only sources whose refined − clean excludes 0
    assert "gain over clean labels is data selection" not in text.split(" Per source")[0]  # globally nothing moves


def _round_metrics(name: str, trained_on: str, exact: float, right: float, vocals_precision: float) -> None:
    per_class = {c: {"precision": 1.0, "recall": 1.0, "support": 100} for c in CLASSES}
    per_class["vocals"] = {"precision": vocals_precision, "recall": 0.9, "support": 100}
    for kind, data in [
        ("classifier", {"trained_on": trained_on, "test_clean_mixtures": {"exact_match": exact, "macro_f1": 0.9}}),
        ("refine", {"label_accuracy_noisy": 0.7, "label_accuracy_input": 0.7, "label_accuracy_refined": right,
                    "stems": 400, "per_class": per_class, "thresholds": {},
                    "detection": {"precision": 0.9, "recall": 0.9}}),
    ]:  # fmt: skip
        paths.metrics(kind, name).parent.mkdir(parents=True, exist_ok=True)
        paths.metrics(kind, name).write_text(json.dumps(data))


def test_another_world_is_set_beside_this_one_with_its_rounds_and_verdicts(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    _documents()
    paths.RESULTS_DOC.write_text(paths.RESULTS_DOC.read_text() + "<!-- worlds:start -->\n<!-- worlds:end -->\n")
    params = load_params(ROOT / "params.yaml")
    _round_metrics("1", "noisy", 0.70, 0.95, 0.9)
    _round_metrics("2", "refined_1", 0.72, 0.93, 0.75)
    _round_metrics("clean", "clean", 0.80, 0.99, 1.0)
    # the other world: refined_2 below clean; its committed run relabels worse in round 2, adding vocals
    _kept_scores(Path("metrics/compare"), {"noisy": 0.0, "refined_2": 1.0, "clean": 3.0})
    sampled = tabulate(params)
    sampled["world"] = "sampled"
    (WORLDS / "sampled").mkdir(parents=True)
    (WORLDS / "sampled" / "compare.json").write_text(json.dumps(sampled))
    assert [r["wrong_labels"]["vocals"] for r in sampled["rounds"]] == [
        {"added": 10, "missed": 10},
        {"added": 30, "missed": 10},
        {"added": 0, "missed": 10},
    ], "false positives from precision and recall; misses from recall"
    # this world: refined_2 as good as clean
    _kept_scores(Path("metrics/compare"), {"noisy": 0.0, "refined_2": 3.0, "clean": 3.0})
    tabulate(params)
    worlds = _results().split("<!-- worlds:start -->")[1]
    assert "| synth | demucs | 3 x 5 |" in worlds and "| sampled | demucs | 3 x 5 |" in worlds
    assert "- sampled, demucs: refined − noisy: refined_2 above noisy; refined − clean: refined_2 below clean" in worlds
    assert "- synth, demucs: refined − noisy: refined_2 above noisy; refined − clean: not established" in worlds
    assert (
        "round 2 relabels worse than round 1 (-2.0 points, 8 of 400 stems); of its 40 wrong labels, 30 add `vocals`"
        in worlds
    )
    assert "its classifier is 8.0 points of exact match behind the clean-trained one" in worlds
    assert "| sampled | 2 | refined_1 | 72.0 % | 70.0 % → 93.0 % |" in worlds
    headline = paths.README.read_text()
    assert "On the world `sampled` (instruments sampled from a General MIDI soundfont; 3 runs x 5 songs" in headline
    assert f"demucs refined_2 − noisy {ci_text(sampled['models']['demucs']['refined_minus_noisy'])}" in headline
    # a world kept under another world's name is refused, not shown under the wrong name
    (WORLDS / "sampled").rename(WORLDS / "recorded")
    with pytest.raises(UserError, match="holds the world 'sampled', not 'recorded'"):
        tabulate(params)


def test_a_batch_on_another_world_refuses_to_share_the_kept_table(tmp_path: Path, monkeypatch) -> None:
    import yaml

    from selfrefine.config import merge_into, parse_params
    from selfrefine.experiments import compare

    monkeypatch.chdir(tmp_path)
    _documents()
    _kept_scores(Path("metrics/compare"), {"noisy": 0.0, "refined_2": 1.0, "clean": 2.0, "selected": 1.5})
    tabulate(load_params(ROOT / "params.yaml"))  # the kept table's world: synth
    raw = yaml.safe_load((ROOT / "params.yaml").read_text())
    sampled = parse_params(merge_into(raw, {"generate": {"engine": "sampled"}}), "sampled")
    monkeypatch.setattr(compare, "run_batch", lambda *a, **k: pytest.fail("queued experiments"))
    with pytest.raises(UserError, match="holds runs of the world 'synth' \\(selected; .*this batch runs 'sampled'"):
        compare.run_comparison(sampled, ["noisy", "refined_2", "clean"], 3, params_path=ROOT / "params.yaml")
