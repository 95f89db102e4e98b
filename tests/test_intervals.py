"""The paired hierarchical bootstrap: exact where it must be, wider than a songs-only bootstrap where runs vary."""

import numpy as np
import pytest

from selfrefine.evaluation.intervals import bootstrap_means, compare_conditions, gap_closed


def _scores(seeds: int = 3, songs: int = 30, seed_sd: float = 0.0, song_sd: float = 1.0, rng_seed: int = 0):
    rng = np.random.default_rng(rng_seed)
    return 3.0 + seed_sd * rng.standard_normal((seeds, 1)) + song_sd * rng.standard_normal((seeds, songs))


def test_a_constant_shift_is_recovered_exactly_because_the_draws_are_paired() -> None:
    noisy = _scores(seed_sd=0.5)
    result = compare_conditions({"noisy": noisy, "refined": noisy + 0.7, "clean": noisy + 1.0}, ["refined"], 2000)
    diff = result["differences"]["refined"]
    assert diff["minus_noisy"]["mean"] == pytest.approx(0.7)
    assert diff["minus_noisy"]["ci_low"] == pytest.approx(0.7) and diff["minus_noisy"]["ci_high"] == pytest.approx(0.7)
    assert diff["gap_closed"]["ci_low"] == pytest.approx(0.7) and diff["gap_closed"]["ci_high"] == pytest.approx(0.7)
    assert result["clean_minus_noisy"]["mean"] == pytest.approx(1.0)


def test_run_to_run_variation_widens_the_interval_as_it_should() -> None:
    varied = _scores(seeds=4, seed_sd=1.0, song_sd=0.2)
    _, draws = bootstrap_means({"x": varied}, 4000)
    hierarchical = np.percentile(draws["x"], 97.5) - np.percentile(draws["x"], 2.5)
    flat = varied.reshape(1, -1)  # one "run" of all songs: what an interval over songs alone sees
    _, draws = bootstrap_means({"x": flat}, 4000)
    songs_only = np.percentile(draws["x"], 97.5) - np.percentile(draws["x"], 2.5)
    assert hierarchical > 3 * songs_only


def test_the_bootstrap_is_reproducible_and_checks_its_input() -> None:
    scores = {"noisy": _scores(), "clean": _scores(rng_seed=1)}
    assert compare_conditions(scores, [], 500, seed=3) == compare_conditions(scores, [], 500, seed=3)
    with pytest.raises(ValueError, match="same"):
        bootstrap_means({"a": _scores(songs=30), "b": _scores(songs=29)})


def test_gap_closed_is_elementwise_and_nan_without_a_gap() -> None:
    np.testing.assert_allclose(
        gap_closed(np.array([2.0, 2.0]), np.array([3.0, 2.5]), np.array([4.0, 4.0])), [0.5, 0.25]
    )
    assert np.isnan(gap_closed(2.0, 3.0, 2.0))
