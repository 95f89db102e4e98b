"""Intervals for separator comparisons: a crossed two-way random-effects analysis of runs x songs.

Every run (a replicate of the pipeline, or of the separators alone) scores the *same* clean test songs, so runs
and songs are crossed, not nested. A difference between two label tables, per run ``r`` and song ``s``, is
modelled as ``d[r, s] = mu + a[r] + b[s] + e[r, s]`` with independent run, song and residual effects of
variances ``σ²_run``, ``σ²_song``, ``σ²_res``. Generalising to new runs *and* new songs, the mean of an
``R x S`` table has variance ``σ²_run / R + σ²_song / S + σ²_res / (R S)``. The balanced two-way ANOVA's mean
squares have ``E[MS_run] = σ²_res + S σ²_run``, ``E[MS_song] = σ²_res + R σ²_song``, ``E[MS_res] = σ²_res``, so
that variance is estimated by ``(v_run + v_song) / (R S)`` with ``v_run = MS_run`` (``R - 1`` degrees of freedom)
and ``v_song = max(MS_song - MS_res, 0)`` (about ``S - 1``).

The interval is ``mean ± t* · se`` with Cochran and Cox's critical value ``t* = (v_run t(R - 1) + v_song
t(S - 1)) / (v_run + v_song)``: each part of the variance carries its own degrees of freedom. Satterthwaite's
single pooled degrees of freedom was tried first and undercovers with few runs (a run variance estimated small
also gets many degrees of freedom): simulated with the variance components measured on this project's scores,
91 % at 3 runs x 100 songs; Cochran-Cox keeps 95 % there (``benchmarks/coverage.py`` measures every method;
``tests/test_intervals.py`` asserts at least 93 % at 3 and 5 runs). The percentile bootstrap used before
(runs, then songs within each run) covered about 82 %. statsmodels' MixedLM fits nested groups, not crossed ones,
and gives no small-sample degrees of freedom, so the few lines of algebra are here.

With one run the run variance cannot be estimated: the interval then spans songs only (``t(S - 1)``) and its
coverage is not checked (``coverage_checked: false`` in what reports it).

The share of the noisy -> clean gap that a refined table closes, ``(refined - noisy) / (clean - noisy)``, gets a
Fieller interval: the set of ratios ``θ`` for which ``(refined - noisy) - θ (clean - noisy)`` is not rejected,
with that combination's own crossed variance and critical value. It is ``undefined`` (no bounded interval)
when the clean - noisy interval includes 0.

Exploratory contrasts (every difference not declared in ``compare.primary``) carry Holm-adjusted p-values.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from scipy import optimize, stats

LEVEL = 0.95
METHOD = (
    "crossed two-way random effects (runs x songs), Cochran-Cox t; Fieller for the share of the gap; "
    "Holm-adjusted p for exploratory contrasts"
)


@dataclass(frozen=True)
class Crossed:
    """The mean of a runs x songs table, and the two parts of its variance (module docstring)."""

    mean: float
    runs: int
    songs: int
    v_run: float
    """``MS_run`` (``R - 1`` degrees of freedom); with one run, 0."""
    v_song: float
    """``max(MS_song - MS_res, 0)``; with one run, the songs' variance (``S - 1`` degrees of freedom)."""
    components: dict[str, float | None]
    """Variance components (dB², method of moments, each floored at 0): ``run``, ``song``, ``residual`` (with one
    run, ``run`` and ``residual`` are ``None`` and ``song`` holds both)."""

    @property
    def se(self) -> float:
        return float(np.sqrt((self.v_run + self.v_song) / (self.runs * self.songs)))

    def critical(self, level: float = LEVEL) -> float:
        """Cochran-Cox's critical value: each variance part's t quantile, weighted by that part."""
        q = 0.5 + level / 2
        total = self.v_run + self.v_song
        if total <= 0:
            return float(stats.t.ppf(q, self.songs - 1))
        t_run = float(stats.t.ppf(q, self.runs - 1)) if self.runs > 1 else 0.0
        return (self.v_run * t_run + self.v_song * float(stats.t.ppf(q, self.songs - 1))) / total

    def p_value(self) -> float:
        """Two-sided p of mean = 0: the level whose Cochran-Cox interval just reaches 0."""
        if self.se <= 0:
            return 0.0 if self.mean else 1.0
        z = abs(self.mean) / self.se
        far = self.critical(1 - 1e-12)
        if z >= far:
            return 1e-12
        return float(1 - optimize.brentq(lambda level: self.critical(level) - z, 1e-12, 1 - 1e-12))

    def interval(self, level: float = LEVEL, p: bool = True) -> dict:
        """``{"mean", "ci_low", "ci_high"}``: the Cochran-Cox interval; with ``p``, also the p-value of mean = 0."""
        half = self.critical(level) * self.se
        out = {"mean": self.mean, "ci_low": self.mean - half, "ci_high": self.mean + half}
        return out | {"p": self.p_value()} if p else out


def _mean_squares(x: np.ndarray, y: np.ndarray) -> tuple[float, float, float]:
    """Run, song and residual mean (cross-)products of two ``(R, S)`` tables (the mean squares when x is y)."""
    r, s = x.shape
    xr, yr = x.mean(axis=1) - x.mean(), y.mean(axis=1) - y.mean()
    xs, ys = x.mean(axis=0) - x.mean(), y.mean(axis=0) - y.mean()
    ex = x - x.mean(axis=1, keepdims=True) - x.mean(axis=0, keepdims=True) + x.mean()
    ey = y - y.mean(axis=1, keepdims=True) - y.mean(axis=0, keepdims=True) + y.mean()
    run = s * float(xr @ yr) / (r - 1)
    song = r * float(xs @ ys) / (s - 1)
    residual = float((ex * ey).sum()) / ((r - 1) * (s - 1))
    return run, song, residual


def crossed(table: np.ndarray) -> Crossed:
    """The crossed analysis (module docstring) of one ``(runs, songs)`` table of scores or differences."""
    d = np.asarray(table, dtype=float)
    if d.ndim != 2 or d.shape[1] < 2 or not np.isfinite(d).all():
        raise ValueError(f"need a finite (runs, songs) table with at least 2 songs; got shape {d.shape}")
    r, s = d.shape
    if r == 1:
        var = float(d[0].var(ddof=1))
        return Crossed(float(d.mean()), 1, s, 0.0, var, {"run": None, "song": var, "residual": None})
    ms_run, ms_song, ms_res = _mean_squares(d, d)
    components = {
        "run": max(0.0, (ms_run - ms_res) / s),
        "song": max(0.0, (ms_song - ms_res) / r),
        "residual": ms_res,
    }
    return Crossed(float(d.mean()), r, s, ms_run, max(ms_song - ms_res, 0.0), components)


def difference(a: np.ndarray, b: np.ndarray, level: float = LEVEL) -> dict:
    """Interval of ``mean(a - b)`` for two ``(runs, songs)`` tables paired by run and song."""
    return crossed(np.asarray(a, dtype=float) - np.asarray(b, dtype=float)).interval(level)


def mean_interval(a: np.ndarray, level: float = LEVEL) -> dict:
    """Interval of one table's mean score (runs and songs as random as in a difference), without a p-value."""
    return crossed(a).interval(level, p=False)


def ratio(num: np.ndarray, den: np.ndarray, level: float = LEVEL) -> dict:
    """Fieller interval of ``mean(num) / mean(den)`` for two ``(runs, songs)`` tables paired by run and song.

    The interval is every ``θ`` with ``|mean(num - θ den)| <= t* se(num - θ den)``, where the variance of the
    combination is quadratic in ``θ`` (the run and song parts of :func:`crossed` as 2 x 2 matrices of mean
    cross-products of ``num`` and ``den``, the song part made positive semi-definite as ``crossed`` floors it at
    0) and ``t*`` is the combination's Cochran-Cox critical value at the point estimate.

    Returns:
        ``{"mean", "ci_low", "ci_high"}``; with ``"undefined": True`` and no bounds (``None``) when the
        denominator's own interval includes 0 (the set of ratios is then unbounded).
    """
    x, y = np.asarray(num, dtype=float), np.asarray(den, dtype=float)
    mx, my = float(x.mean()), float(y.mean())
    point = mx / my if my else float("nan")
    undefined = {"mean": point, "ci_low": None, "ci_high": None, "undefined": True}
    den_ci = crossed(y).interval(level, p=False)
    if den_ci["ci_low"] <= 0 <= den_ci["ci_high"]:
        return undefined
    r, s = x.shape
    if r == 1:  # songs only, as crossed() does with one run
        v_run, v_song = np.zeros((2, 2)), np.cov(x[0], y[0])
    else:  # the run and song parts of crossed(), as 2 x 2 matrices of mean (cross-)products of x and y
        parts = np.array([[_mean_squares(p, q) for q in (x, y)] for p in (x, y)])  # (2, 2, 3)
        v_run, v_song = parts[:, :, 0], _psd(parts[:, :, 1] - parts[:, :, 2])
    w = np.array([1.0, -point])
    t = Crossed(mx - point * my, r, s, float(w @ v_run @ w), float(w @ v_song @ w), {}).critical(level)
    (vxx, vxy), (_, vyy) = (v_run + v_song) / (r * s)
    a = my**2 - t**2 * vyy
    b = -2 * (mx * my - t**2 * vxy)
    c = mx**2 - t**2 * vxx
    disc = b**2 - 4 * a * c
    if a <= 0 or disc < 0:
        return undefined
    low, high = sorted(((-b - np.sqrt(disc)) / (2 * a), (-b + np.sqrt(disc)) / (2 * a)))
    return {"mean": point, "ci_low": float(low), "ci_high": float(high)}


def _psd(matrix: np.ndarray) -> np.ndarray:
    """The nearest positive semi-definite matrix (negative eigenvalues set to 0): ``max(v, 0)`` for matrices."""
    values, vectors = np.linalg.eigh((matrix + matrix.T) / 2)
    return (vectors * np.clip(values, 0, None)) @ vectors.T


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm's step-down adjustment of a family of p-values (same order as given)."""
    p = np.asarray(p_values, dtype=float)
    order = np.argsort(p)
    adjusted = np.empty_like(p)
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (len(p) - rank) * p[i]))
        adjusted[i] = running
    return [float(v) for v in adjusted]


def compare_conditions(scores: Mapping[str, np.ndarray], refined: list[str], level: float = LEVEL) -> dict:
    """Every condition's mean with its interval; each refined table against noisy, clean and the gap.

    Args:
        scores: ``{label table: (runs, songs)}`` per-song global SDR, with ``noisy`` among them, every table
            with the same runs and songs in the same order (paired).
        refined: the tables to set against ``noisy`` (and, when ``clean`` is there, against clean and the gap).

    Returns:
        ``{table: {"mean", "ci_low", "ci_high", "p"}, ..., "differences": {table: {"minus_noisy": {...},
        "minus_clean": {...}, "gap_closed": {...}}}, "clean_minus_noisy": {...}}`` (the clean parts only with
        ``clean``).
    """
    shapes = {np.shape(v) for v in scores.values()}
    if len(shapes) != 1 or len(next(iter(shapes))) != 2:
        raise ValueError(f"every condition needs the same (runs, songs) scores; got shapes {sorted(shapes)}")
    out: dict = {name: mean_interval(v, level) for name, v in scores.items()}
    out["differences"] = {}
    noisy = scores["noisy"]
    for name in refined:
        diff = {"minus_noisy": difference(scores[name], noisy, level)}
        if "clean" in scores:
            diff["minus_clean"] = difference(scores[name], scores["clean"], level)
            diff["gap_closed"] = ratio(np.asarray(scores[name]) - noisy, np.asarray(scores["clean"]) - noisy, level)
        out["differences"][name] = diff
    if "clean" in scores:
        out["clean_minus_noisy"] = difference(scores["clean"], noisy, level)
    return out


def simulate_coverage(
    method, runs: int, songs: int, components: Mapping[str, float], trials: int = 2000, seed: int = 0
) -> float:
    """Share of ``trials`` simulated ``(runs, songs)`` difference tables whose interval covers the true mean.

    Args:
        method: ``table -> {"ci_low", "ci_high", ...}``, e.g. :func:`mean_interval`.
        components: the variances ``run``, ``song``, ``residual`` (dB²) the tables are drawn with
            (``d = 0.5 + a[r] + b[s] + e[r, s]``).
    """
    rng = np.random.default_rng(seed)
    true = 0.5
    covered = 0
    for _ in range(trials):
        table = (
            true
            + rng.normal(0, np.sqrt(components["run"]), (runs, 1))
            + rng.normal(0, np.sqrt(components["song"]), (1, songs))
            + rng.normal(0, np.sqrt(components["residual"]), (runs, songs))
        )
        ci = method(table)
        covered += ci["ci_low"] <= true <= ci["ci_high"]
    return covered / trials


def simulate_gap_coverage(
    runs: int,
    songs: int,
    components: Mapping[str, float],
    gain: float = 0.7,
    gap: float = 0.6,
    trials: int = 1000,
    seed: int = 0,
) -> tuple[float, float]:
    """Coverage of :func:`ratio` for the share of the gap closed, and the share of trials it is undefined.

    Three tables (noisy, refined, clean) share each song's effect (how hard a song is, which cancels in a
    difference); each table has its own run, song and residual effects, of half the given variances, so that a
    difference of two tables has the given components. Refined
    is ``gain`` above noisy and clean ``gap`` above noisy (true share ``gain / gap``). An undefined interval
    counts as covering (it excludes nothing).
    """
    rng = np.random.default_rng(seed)
    truth = gain / gap
    covered = undefined = 0
    for _ in range(trials):
        song = rng.normal(0, 1.0, (1, songs))
        noisy, refined, clean = (
            shift
            + song
            + rng.normal(0, np.sqrt(components["run"] / 2), (runs, 1))
            + rng.normal(0, np.sqrt(components["song"] / 2), (1, songs))
            + rng.normal(0, np.sqrt(components["residual"] / 2), (runs, songs))
            for shift in (0.0, gain, gap)
        )
        ci = ratio(refined - noisy, clean - noisy)
        if ci.get("undefined"):
            undefined += 1
            covered += 1
        else:
            covered += ci["ci_low"] <= truth <= ci["ci_high"]
    return covered / trials, undefined / trials


NESTED_METHOD = (
    "balanced one-way random effects on run means (separator trainings nested in pipeline replicates); exact F "
    "interval for the refinement's share, chi-square interval for the separators' variance"
)


def nested_split(runs: np.ndarray, level: float = LEVEL) -> dict:
    """Run-to-run variance of a table's mean score, split between the refinement and separator training.

    ``runs[k, j]`` is the mean score (over the same test songs) of separator training ``j`` within pipeline
    replicate ``k`` (a noise draw and its classifiers; :data:`NESTED_METHOD`). With ``K`` replicates of ``J``
    trainings, ``MS_between = J var_k(mean_j runs)`` and ``MS_within`` (``K (J - 1)`` degrees of freedom) give
    ``σ²_separators = MS_within`` and ``σ²_refinement = max((MS_between - MS_within) / J, 0)``. The refinement's
    share ``ρ = σ²_refinement / (σ²_refinement + σ²_separators)`` has the exact interval (normal effects) from
    ``F = MS_between / MS_within ~ (1 + J ρ / (1 - ρ)) F(K - 1, K (J - 1))``.

    Returns:
        ``{"refinement", "separators"}`` (dB², the variance of one run's mean score each part adds),
        ``separators_ci`` ``[low, high]``, ``share_refinement`` ``{mean, ci_low, ci_high}``, ``replicates`` (K),
        ``separator_runs`` (J), ``method``.
    """
    runs = np.asarray(runs, dtype=float)
    k, j = runs.shape
    if k < 2 or j < 2:
        raise ValueError(f"a nested split needs at least 2 replicates of 2 trainings, got {k} x {j}")
    means = runs.mean(axis=1)
    df_between, df_within = k - 1, k * (j - 1)
    ms_between = j * float(np.var(means, ddof=1))
    ms_within = float(((runs - means[:, None]) ** 2).sum()) / df_within
    alpha = 1 - level
    refinement = max((ms_between - ms_within) / j, 0.0)
    share = refinement / (refinement + ms_within) if refinement + ms_within > 0 else 0.0
    if ms_within > 0:
        f = ms_between / ms_within
        bounds = [f / stats.f.ppf(q, df_between, df_within) for q in (1 - alpha / 2, alpha / 2)]
        low, high = (float(np.clip((b - 1) / (b - 1 + j), 0.0, 1.0)) for b in bounds)
        chi = [df_within * ms_within / stats.chi2.ppf(q, df_within) for q in (1 - alpha / 2, alpha / 2)]
    else:  # every training within a replicate scored alike: all of the spread is the refinement's
        low = high = 1.0
        chi = [0.0, 0.0]
    return {
        "refinement": refinement,
        "separators": ms_within,
        "separators_ci": [float(c) for c in chi],
        "share_refinement": {"mean": share, "ci_low": low, "ci_high": high},
        "replicates": k,
        "separator_runs": j,
        "method": NESTED_METHOD,
    }


def run_spread(table: np.ndarray, level: float = LEVEL) -> dict:
    """How much one run's mean score varies from run to run, for a ``(runs, songs)`` table of one condition.

    Every run scores the same songs, so the song effects cancel between runs: the run means vary with
    ``σ²_run + σ²_res / S`` and their sample variance has ``R - 1`` degrees of freedom (chi-square interval,
    exact for normal effects).

    Returns:
        ``{"variance", "ci_low", "ci_high", "runs"}`` (dB²); ``None`` bounds with one run.
    """
    means = np.asarray(table, dtype=float).mean(axis=1)
    runs = means.size
    if runs < 2:
        return {"variance": 0.0, "ci_low": None, "ci_high": None, "runs": runs}
    variance = float(np.var(means, ddof=1))
    alpha, df = 1 - level, runs - 1
    low, high = (df * variance / stats.chi2.ppf(q, df) for q in (1 - alpha / 2, alpha / 2))
    return {"variance": variance, "ci_low": float(low), "ci_high": float(high), "runs": runs}


def spread_ratio(a: dict, b: dict, level: float = LEVEL) -> dict | None:
    """The ratio of two conditions' run-to-run spreads (:func:`run_spread`), ``a / b``, with its F interval.

    Where ``b``'s runs vary one source of spread (separator training) and ``a``'s vary it and another (the noise
    draw and the classifiers as well), the ratio says how much the other adds: 1 when it adds nothing. The two
    sample variances are treated as independent (``R_a - 1`` and ``R_b - 1`` degrees of freedom; exact for
    normal effects).

    Returns:
        ``{"ratio", "ci_low", "ci_high"}``, or ``None`` with fewer than 2 runs or no spread in ``b``.
    """
    df_a, df_b = a["runs"] - 1, b["runs"] - 1
    if df_a < 1 or df_b < 1 or b["variance"] <= 0:
        return None
    ratio, alpha = a["variance"] / b["variance"], 1 - level
    low = ratio / stats.f.ppf(1 - alpha / 2, df_a, df_b)
    high = ratio / stats.f.ppf(alpha / 2, df_a, df_b)
    return {"ratio": float(ratio), "ci_low": float(low), "ci_high": float(high)}
