"""The crossed runs x songs intervals: coverage by simulation, exact where they must be, Fieller and Holm."""

import numpy as np
import pytest

from selfrefine.evaluation.intervals import (
    compare_conditions,
    crossed,
    difference,
    holm,
    mean_interval,
    nested_split,
    ratio,
    simulate_coverage,
    simulate_gap_coverage,
)

#: Variance components (dB²) measured on the kept Demucs scores (refined_2 - clean, 3 runs x 30 songs).
MEASURED = {"run": 0.0053, "song": 0.0156, "residual": 0.0311}
#: The same with a run variance ten times larger: what replicating the whole pipeline adds.
RUN_HEAVY = {"run": 0.05, "song": 0.0156, "residual": 0.0311}


def _songs_only(table: np.ndarray) -> dict:
    """The old mistake in closed form: all runs' songs pooled as if independent (no run variance)."""
    flat = table.ravel()
    half = 1.96 * flat.std(ddof=1) / np.sqrt(flat.size)
    return {"ci_low": flat.mean() - half, "ci_high": flat.mean() + half}


@pytest.mark.parametrize("components", [MEASURED, RUN_HEAVY], ids=["measured", "run-heavy"])
@pytest.mark.parametrize("runs", [3, 5])
@pytest.mark.parametrize("songs", [30, 100])
def test_the_interval_keeps_its_coverage_with_few_runs(runs: int, songs: int, components: dict) -> None:
    coverage = simulate_coverage(mean_interval, runs, songs, components, trials=1500, seed=runs * songs)
    assert coverage >= 0.93, f"{runs} runs x {songs} songs: nominal 95 % interval covers {coverage:.1%}"


def test_the_coverage_check_fails_an_interval_that_ignores_the_runs() -> None:
    coverage = simulate_coverage(_songs_only, 3, 100, RUN_HEAVY, trials=500, seed=1)
    assert coverage < 0.7


@pytest.mark.parametrize("runs", [3, 5])
def test_the_share_of_the_gap_closed_keeps_its_coverage(runs: int) -> None:
    coverage, undefined = simulate_gap_coverage(runs, 100, MEASURED, trials=800, seed=runs)
    assert coverage >= 0.93 and undefined < 0.05


def test_a_constant_shift_is_recovered_exactly_because_runs_and_songs_are_paired() -> None:
    rng = np.random.default_rng(0)
    noisy = 3.0 + 0.5 * rng.standard_normal((3, 1)) + rng.standard_normal((3, 30))
    result = compare_conditions({"noisy": noisy, "refined": noisy + 0.7, "clean": noisy + 1.0}, ["refined"])
    diff = result["differences"]["refined"]
    assert diff["minus_noisy"]["ci_low"] == pytest.approx(0.7) and diff["minus_noisy"]["ci_high"] == pytest.approx(0.7)
    assert diff["gap_closed"]["ci_low"] == pytest.approx(0.7) and diff["gap_closed"]["ci_high"] == pytest.approx(0.7)
    assert result["clean_minus_noisy"]["mean"] == pytest.approx(1.0)
    with pytest.raises(ValueError, match="same"):
        compare_conditions({"noisy": noisy, "clean": noisy[:, :29]}, [])


def test_the_variance_parts_are_the_anova_estimates() -> None:
    rng = np.random.default_rng(1)
    table = 2.0 * rng.standard_normal((4, 1)) + 0.1 * rng.standard_normal((4, 200))
    c = crossed(table)
    run_means = table.mean(axis=1)
    assert c.v_run == pytest.approx(200 * run_means.var(ddof=1))
    assert c.components["run"] == pytest.approx(run_means.var(ddof=1), rel=0.01)
    # run variance dominates: the interval is the t interval of the 4 run means (3 degrees of freedom)
    ci = c.interval()
    half = 3.182446 * run_means.std(ddof=1) / 2
    assert ci["ci_high"] - ci["mean"] == pytest.approx(half, rel=0.01)


def test_the_p_value_is_the_level_at_which_the_interval_reaches_zero() -> None:
    rng = np.random.default_rng(2)
    c = crossed(0.1 + 0.1 * rng.standard_normal((3, 1)) + 0.3 * rng.standard_normal((3, 40)))
    p = c.interval()["p"]
    assert 0 < p < 1
    edge = c.interval(1 - p)
    assert min(abs(edge["ci_low"]), abs(edge["ci_high"])) == pytest.approx(0, abs=1e-9)


def test_the_gap_share_is_undefined_when_clean_minus_noisy_includes_zero() -> None:
    rng = np.random.default_rng(3)
    gain = 0.5 + 0.1 * rng.standard_normal((3, 30))
    gap = 0.02 + 0.5 * rng.standard_normal((3, 30))
    assert difference(gap, np.zeros_like(gap))["ci_low"] < 0
    out = ratio(gain, gap)
    assert out["undefined"] and out["ci_low"] is None and out["ci_high"] is None


def test_holm_adjusts_step_down_and_keeps_order() -> None:
    assert holm([0.01, 0.04, 0.03, 0.5]) == pytest.approx([0.04, 0.09, 0.09, 0.5])
    assert holm([0.3, 0.3]) == pytest.approx([0.6, 0.6])


def test_one_run_spans_songs_only() -> None:
    table = np.arange(10.0).reshape(1, 10)
    c = crossed(table)
    assert c.runs == 1 and c.v_run == 0 and c.se == pytest.approx(table.std(ddof=1) / np.sqrt(10))


@pytest.mark.parametrize(
    ("replicates", "trainings", "refinement", "separators"), [(5, 2, 0.01, 0.005), (3, 2, 0.02, 0.002)]
)
def test_the_nested_split_covers_the_refinements_share_and_the_separators_variance(
    replicates: int, trainings: int, refinement: float, separators: float
) -> None:
    rng = np.random.default_rng(0)
    share = refinement / (refinement + separators)
    hits = np.zeros(2)
    for _ in range(1500):
        runs = rng.normal(0, np.sqrt(refinement), (replicates, 1)) + rng.normal(
            0, np.sqrt(separators), (replicates, trainings)
        )
        split = nested_split(runs)
        low, high = split["separators_ci"]
        hits += [
            split["share_refinement"]["ci_low"] <= share <= split["share_refinement"]["ci_high"],
            low <= separators <= high,
        ]
    assert (hits / 1500 >= 0.93).all(), hits / 1500
    with pytest.raises(ValueError, match="at least 2 replicates of 2 trainings"):
        nested_split(np.zeros((5, 1)))


def test_the_ratio_of_two_run_spreads_covers_the_true_ratio() -> None:
    from selfrefine.evaluation.intervals import run_spread, spread_ratio

    rng, hits, trials, true = np.random.default_rng(0), 0, 2000, 4.0
    for _ in range(trials):
        a = run_spread(rng.normal(0, np.sqrt(true), (5, 1)) + np.zeros((5, 3)))
        b = run_spread(rng.normal(0, 1.0, (5, 1)) + np.zeros((5, 3)))
        r = spread_ratio(a, b)
        hits += r["ci_low"] <= true <= r["ci_high"]
    assert 0.93 <= hits / trials <= 0.97
    assert spread_ratio({"variance": 1.0, "runs": 1}, {"variance": 1.0, "runs": 5}) is None
    assert spread_ratio({"variance": 1.0, "runs": 5}, {"variance": 0.0, "runs": 5}) is None
