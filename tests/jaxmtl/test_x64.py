"""Every method under ``jax_enable_x64``: states keep their dtypes, so ``lax.scan`` works.

x64 is process-wide, so the check runs in a subprocess.
"""
from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

SCRIPT = textwrap.dedent("""
    import jax
    jax.config.update("jax_enable_x64", True)
    import jax.numpy as jnp, numpy as np
    from tests.methods_registry import SPECS, inputs
    bad = []
    for name, spec in SPECS.items():
        m = spec.build(3)
        for dtype in (jnp.float32, jnp.float64):
            j = jnp.asarray(np.random.default_rng(0).normal(size=(3, 5)), dtype)
            params, kwargs = inputs(name, j)
            body = lambda s, _: m.update(j, s, params, **kwargs)[::-1]
            try:
                _, out = jax.jit(lambda s: jax.lax.scan(body, s, None, length=2))(m.init(params))
                assert np.all(np.isfinite(out)), "non-finite update"
            except Exception as err:  # report every method, not the first
                bad.append(f"{name} {dtype.__name__}: {str(err).splitlines()[0][:200]}")
    print("\\n".join(bad) or "ok")
""")


@pytest.mark.slow  # ~35 s on 2 CPU cores (every method, x64 subprocess)
def test_every_method_scans_under_x64():
    root = Path(__file__).resolve().parents[2]
    out = subprocess.run([sys.executable, "-c", SCRIPT], cwd=root, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.strip() == "ok", out.stdout
