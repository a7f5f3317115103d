"""Shared test configuration: hypothesis profiles, Jacobian samplers, a shared compilation cache."""
from __future__ import annotations

import os
from pathlib import Path

# One persistent XLA compilation cache for the whole session: both xdist workers and every
# study started in a subprocess (inheriting the environment) reuse each other's compiled
# steps (the same MultiLeNet steps compile in many tests). Set before JAX is imported.
os.environ.setdefault("JAX_COMPILATION_CACHE_DIR",
                      str(Path(__file__).resolve().parents[1] / ".pytest_cache" / "jax-compilation-cache"))
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0.3")

# The tests check answers, not speed, and most of their time on 2 cores is XLA compiling
# thousands of small jitted functions: the CPU backend's optimisation passes are switched off
# for them (the studies' tiny presets 43 % faster, the methods' property tests 20-25 %,
# measured on a cold cache). Benchmarks and the studies themselves run with XLA's defaults.
# Subprocesses inherit it through ``device_env``.
TEST_XLA_FLAGS = "--xla_backend_optimization_level=0"
if "xla_backend_optimization_level" not in os.environ.get("XLA_FLAGS", ""):
    os.environ["XLA_FLAGS"] = f"{os.environ.get('XLA_FLAGS', '')} {TEST_XLA_FLAGS}".strip()

import numpy as np  # noqa: E402
import pytest  # noqa: E402
from hypothesis import HealthCheck, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

settings.register_profile("default", max_examples=100, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("dev", max_examples=30, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))

# J = [[-4, 1, 1], [6, 1, 1]]: TorchJD's documented example, with published outputs.
REFERENCE_J = np.array([[-4.0, 1.0, 1.0], [6.0, 1.0, 1.0]], np.float32)

SHAPES = ((1, 3), (2, 8), (3, 1), (3, 8), (5, 3))
"""``(T, P)`` of the default draws: one task, ``P = 1``, ``T > P``, and the usual case; few
shapes, because every new shape compiles every method again (the suite's main cost)."""


@st.composite
def jacobians(draw, tasks=None, params=None, scales=True, full_rank=False):
    """Random ``(T, P)`` float32 Jacobians of controlled rank and scale.

    Draws ``(T, P)`` from :data:`SHAPES` (or from ``tasks x params`` when given),
    a rank from 0 to ``min(T, P)`` (rank-deficient and ``T > P`` cases
    included unless ``full_rank``, which also bounds the condition number by 20)
    and, when ``scales``, an overall scale 10^k, k in [-30, 30].
    """
    if tasks is None and params is None:
        t, p = draw(st.sampled_from(SHAPES))
    else:
        t = draw(st.sampled_from(tasks or sorted({t for t, _ in SHAPES})))
        p = draw(st.sampled_from(params or sorted({p for _, p in SHAPES})))
    rank = min(t, p) if full_rank else draw(st.integers(0, min(t, p)))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    j = rng.normal(size=(t, rank)) @ rng.normal(size=(rank, p))
    if full_rank and rank:
        # well-conditioned: singular values within a factor 20 of the largest
        u, sv, vt = np.linalg.svd(j, full_matrices=False)
        j = (u * np.clip(sv, sv.max() / 20, None)) @ vt
    if scales:
        j = j * 10.0 ** draw(st.integers(-30, 30))
    return j.astype(np.float32)


def device_env(devices: int) -> dict:
    """The environment of a subprocess that sees ``devices`` CPU devices (the tests' XLA flags kept)."""
    flags = f"{os.environ.get('XLA_FLAGS', '')} --xla_force_host_platform_device_count={devices}".strip()
    return dict(os.environ, XLA_FLAGS=flags, JAX_PLATFORMS="cpu")


def write_fake_fashion_mnist(directory, n_train=120, n_test=40, seed=0, gz=True):
    """Small Fashion-MNIST-shaped IDX files (random images, labels 0..9) for tests."""
    from jaxmtl.data import write_idx

    rng = np.random.default_rng(seed)
    suffix = ".gz" if gz else ""
    directory.mkdir(parents=True, exist_ok=True)
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        write_idx(directory / f"{prefix}-images-idx3-ubyte{suffix}",
                  rng.integers(0, 256, (n, 28, 28), dtype=np.uint8))
        write_idx(directory / f"{prefix}-labels-idx1-ubyte{suffix}", (np.arange(n) % 10).astype(np.uint8))
    return directory



@pytest.fixture
def fake_fashion(tmp_path):
    return write_fake_fashion_mnist(tmp_path / "fashion")


CLEAR_EVERY = 100
"""Tests between two drops of JAX's compilation caches (and at the end of every module)."""
_ran = 0


def pytest_runtest_teardown(item, nextitem):
    """Drops JAX's compilation caches every :data:`CLEAR_EVERY` tests and after each module.

    An xdist worker that keeps every executable of the suite accumulates gigabytes of
    JIT-ed code, and XLA's CPU compiler then crashed (SIGSEGV/SIGABRT inside
    ``backend_compile_and_load``) after ~65% of the suite; the suite's tests do not
    rely on executables outliving these points (recompiling costs seconds).
    """
    global _ran
    _ran += 1
    if nextitem is None or nextitem.module is not item.module or _ran % CLEAR_EVERY == 0:
        import jax

        jax.clear_caches()
