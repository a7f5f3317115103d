"""experiments.paper_b.uncertainty: the two-level bootstrap and the gap threshold against closed forms."""
import numpy as np
import pytest

from experiments.paper_b import analysis as pb
from experiments.paper_b.uncertainty import bootstrap_ci, open_threshold


def test_bootstrap_interval_of_a_normal_mean_matches_the_closed_form():
    # one group: the plain bootstrap; the mean of 400 N(3, 2^2) draws has a 95% interval
    # of about mean +- 1.96 * 2 / sqrt(400) = +- 0.196
    x = np.random.default_rng(0).normal(3.0, 2.0, 400)
    lo, hi = bootstrap_ci([x], np.mean, n_boot=2000)
    assert (lo + hi) / 2 == pytest.approx(x.mean(), abs=0.02)
    assert hi - lo == pytest.approx(2 * 1.96 * x.std() / 20, rel=0.1)


def test_bootstrap_resamples_the_seeds_too():
    # 8 seeds whose points share a seed offset (sd 1) plus a small within-seed noise (sd 0.1):
    # the interval of the mean is set by the 8 offsets (about +- 1.96 / sqrt(8) = +- 0.69),
    # far wider than the 400 points would give as if independent (+- 0.1)
    rng = np.random.default_rng(1)
    offsets = rng.normal(0.0, 1.0, 8)
    groups = [o + rng.normal(0.0, 0.1, 50) for o in offsets]
    lo, hi = bootstrap_ci(groups, np.mean, n_boot=2000)
    assert hi - lo == pytest.approx(2 * 1.96 * offsets.std() / np.sqrt(8), rel=0.25)
    pooled = bootstrap_ci([np.concatenate(groups)], np.mean, n_boot=2000)
    assert pooled[1] - pooled[0] < (hi - lo) / 4


def test_bootstrap_degenerate_input():
    assert np.isnan(bootstrap_ci([np.array([1.0])], np.mean)).all()  # one point: nothing to resample
    assert np.isnan(bootstrap_ci([], np.mean)).all()
    assert bootstrap_ci([np.full(5, 2.0)], np.mean) == (2.0, 2.0)
    assert np.isnan(bootstrap_ci([np.arange(5.0)], lambda a: np.nan)).all()


def test_bootstrap_of_a_correlation_over_pairs():
    x = np.linspace(0, 1, 30)
    pairs = np.stack([x, 3 * x + 1], axis=1)   # exactly linear: every replicate gives r = 1
    lo, hi = bootstrap_ci([pairs[:15], pairs[15:]], lambda a: pb.correlation(a[:, 0], a[:, 1])[0])
    assert lo == pytest.approx(1.0) and hi == pytest.approx(1.0)


def test_open_threshold_from_the_seed_spread():
    # two seeds differing by d at every level: per-level sample variance d^2 / 2, so
    # s = d / sqrt(2) and the threshold 2 s sqrt(2 / 2) = sqrt(2) d
    levels = np.linspace(2.0, 1.0, 5)
    assert open_threshold(np.stack([levels, levels + 0.1])) == pytest.approx(np.sqrt(2) * 0.1)
    # four seeds at +-a: sample variance 4 a^2 / 3, threshold 2 sqrt(4/3) a sqrt(2/4)
    a = 0.05
    four = np.stack([levels + a, levels - a, levels + a, levels - a])
    assert open_threshold(four) == pytest.approx(2 * np.sqrt(4 / 3) * a * np.sqrt(0.5))
    assert np.isnan(open_threshold(levels[None]))  # one seed


def test_spearman_of_a_monotone_map_is_one():
    x = np.random.default_rng(2).normal(size=50)
    r, rho, n = pb.correlation(x, np.exp(3 * x))
    assert rho == pytest.approx(1.0) and r < 0.9 and n == 50
    assert pb.correlation(x, -x ** 3)[1] == pytest.approx(-1.0)
