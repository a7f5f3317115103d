"""The studies' train step on Flax models: Gramian methods by the lean path against the mean.

Every step is :func:`jaxmtl.training.make_task_train_step` with Adam, on a Flax
model as written (:class:`FlaxMLP`, the MLP of :func:`benchmarks.common.mlp_problem`
as ``nn.Dense`` layers, and the Multi-Fashion :class:`jaxmtl.models.MultiLeNet`):

* *EW*: one backward pass of ``sum_t L_t`` (no Jacobian), then Adam;
* *Jacobian+mean*: the step the studies run for ``mean`` (per-task gradients of the
  shared leaves, :func:`jaxmtl.linear` under :func:`jaxmtl.partition`);
* each Gramian method (the registry's kind ``'gramian'``) with ``lean_gramian=True``, as
  the studies run it (:mod:`jaxmtl.flax_gramian`), and UPGrad by the Jacobian path too.

:func:`memory` compares XLA's peak-memory estimates of the lean Gramian path (UPGrad's
weights and update, ``chunk_size='auto'``) with the shared-only Jacobian as one vmap.
"""
from __future__ import annotations

import statistics
import time

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax

import jaxmtl
from benchmarks.common import peak_bytes
from jaxmtl import registry
from jaxmtl.data.tasks import classification_tasks
from jaxmtl.flax_gramian import weighted_value_and_grad
from jaxmtl.models import MultiLeNet, SegNet, shared_mask
from jaxmtl.training import make_task_train_step, task_losses

GRAMIAN_METHODS = [m.name for m in registry.entries(kind="gramian")]


class FlaxMLP(nn.Module):
    """Trunk ``in-512-512`` (ReLU) and ``num_tasks`` linear 10-class heads; logits ``(T, B, 10)``."""

    num_tasks: int
    width: int = 512

    @nn.compact
    def __call__(self, x, train: bool = False):
        z = x.reshape((x.shape[0], -1))
        for i in range(2):
            z = nn.relu(nn.Dense(self.width, name=f"encoder_{i}")(z))
        return jnp.stack([nn.Dense(10, name=f"head_{t}")(z) for t in range(self.num_tasks)])


def mlp_shared(params):
    return {k: k.startswith("encoder") for k in params}


def problem(kind: str, t: int, batch: int, seed: int = 0):
    """``(model, variables, batch dict, tasks, shared mask)``: ``'mlp'`` (1296 inputs) or ``'lenet'``."""
    rng = np.random.default_rng(seed)
    if kind == "mlp":
        model, x, shared = FlaxMLP(t), rng.normal(size=(batch, 1296)), mlp_shared
    else:
        model, x, shared = MultiLeNet(num_tasks=t), rng.uniform(size=(batch, 36, 36, 1)), shared_mask
    data = {"image": x.astype(np.float32), "labels": rng.integers(0, 10, (batch, t)).astype(np.int32)}
    variables = model.init(jax.random.PRNGKey(seed), data["image"][:1])
    return model, variables, data, classification_tasks([f"t{i}" for i in range(t)]), shared


def _step(model, variables, tasks, shared, method: str | None, lean: bool = False, chunk_size="auto"):
    """``(step, opt_state)``, ``step(variables, opt_state, batch, rng)``: ``method=None`` is EW
    (one backward pass of the summed losses)."""
    if method is None:
        tx = optax.adam(1e-3)

        def loss(params, batch, rng):
            out = model.apply({"params": params}, batch["image"], train=True, rngs={"dropout": rng})
            return jnp.sum(task_losses(out, batch, tasks))

        @jax.jit
        def ew(variables, opt_state, batch, rng):
            grads = jax.grad(loss)(variables["params"], batch, rng)
            updates, opt_state = tx.update(grads, opt_state, variables["params"])
            return {"params": optax.apply_updates(variables["params"], updates)}, opt_state

        return ew, tx.init(variables["params"])
    tx = optax.chain(jaxmtl.partition(registry.build(method, num_tasks=len(tasks)), shared), optax.adam(1e-3))
    return (make_task_train_step(model.apply, tx, tasks, shared=shared, lean_gramian=lean, chunk_size=chunk_size),
            tx.init(variables["params"]))


def _interleaved(steps: dict, args: tuple, repeats: int) -> dict:
    """Seconds of each step's ``repeats`` calls, the steps called in turn (after one warm-up call
    each), so that a load that changes during the run weighs on every step of a round alike."""
    args = jax.device_put(args)
    for fn in steps.values():
        jax.block_until_ready(fn[0](args[0], fn[1], *args[1:]))
    times: dict = {name: [] for name in steps}
    with jax.transfer_guard("disallow"):
        for _ in range(repeats):
            for name, (fn, opt_state) in steps.items():
                start = time.perf_counter()
                jax.block_until_ready(fn(args[0], opt_state, *args[1:]))
                times[name].append(time.perf_counter() - start)
    return times


def _ratio(times: list, base: list) -> tuple[float, float, float]:
    """Median and quartiles of the per-round ratios ``times[i] / base[i]``."""
    q1, q2, q3 = np.percentile(np.asarray(times) / np.asarray(base), [25, 50, 75])
    return float(q2), float(q1), float(q3)


def flop_floor(model, variables, tasks, shared, args) -> float:
    """XLA's flop count of the lean UPGrad step with its ``T`` task passes as one vmap (a
    loop's body is counted once, so not the chunked step) over that of the EW step: the flops of
    an exact Gramian by ``T`` cotangent passes next to those of one backward pass."""
    def flops(step, opt_state):
        cost = step.lower(args[0], opt_state, *args[1:]).compile().cost_analysis()
        return (cost[0] if isinstance(cost, list) else cost)["flops"]

    return flops(*_step(model, variables, tasks, shared, "upgrad", True, None)) / flops(
        *_step(model, variables, tasks, shared, None))


def run(problems, methods, repeats: int, log=print) -> list[dict]:
    """``problems``: ``(label, kind, t, batch)``; for each, the EW and Jacobian+mean steps, UPGrad by
    the Jacobian path and the Gramian methods among ``methods`` by the lean path are all called in
    turn ``repeats`` times (:func:`_interleaved`); ratios are medians (and quartiles) of the
    per-round ratios."""
    rows = []
    for label, kind, t, batch in problems:
        model, variables, data, tasks, shared = problem(kind, t, batch)
        args = (variables, data, jax.random.PRNGKey(0))
        names = ["upgrad (Jacobian path)"] + [m for m in methods if m in GRAMIAN_METHODS]
        steps = {"ew": _step(model, variables, tasks, shared, None),
                 "mean": _step(model, variables, tasks, shared, "mean")}
        steps.update((name, _step(model, variables, tasks, shared, *((name, True) if name in GRAMIAN_METHODS
                                                                    else ("upgrad", False))))
                     for name in names)
        floor = flop_floor(model, variables, tasks, shared, args)
        times = _interleaved(steps, args, repeats)
        ms = {name: 1e3 * statistics.median(v) for name, v in times.items()}
        for name in names:
            vs_mean, vs_ew = _ratio(times[name], times["mean"]), _ratio(times[name], times["ew"])
            row = {"problem": label, "T": t, "batch": batch, "method": name, "ms": ms[name],
                   "mean_ms": ms["mean"], "ew_ms": ms["ew"], "vs_mean": vs_mean[0], "vs_mean_iqr": vs_mean[1:],
                   "vs_ew": vs_ew[0], "vs_ew_iqr": vs_ew[1:], "floor": floor}
            rows.append(row)
            log(f"{label} T={t} batch {batch} {name:14s} {row['ms']:8.1f} ms  x{row['vs_mean']:5.2f} "
                f"Jacobian+mean ({row['mean_ms']:.1f} ms)  x{row['vs_ew']:5.2f} EW ({row['ew_ms']:.1f} ms); "
                f"flop floor x{floor:.2f} EW")
    return rows


def memory(t: int, log=print, problems=("MLP", "SegNet")) -> list[dict]:
    """Peak memory (XLA's estimate) of the lean UPGrad path and the one-vmap Jacobian at ``t`` tasks:
    the MLP (batch 256) and a small SegNet (32 x 32 images, batch 4, one regression output per task)."""
    model, variables, data, tasks, shared = problem("mlp", t, 256)
    cases = [("MLP", model, variables, data, shared, tasks)]
    rng = np.random.default_rng(0)
    seg = SegNet(channels=(1,) * t, filters=(8, 8, 16, 16, 16))
    data = {"image": rng.normal(size=(4, 32, 32, 3)).astype(np.float32),
            "y": rng.normal(size=(4, 32, 32, t)).astype(np.float32)}
    cases.append(("SegNet", seg, seg.init(jax.random.PRNGKey(0), data["image"][:1]), data, shared_mask, None))
    rows = []
    for label, model, variables, data, shared, tasks in [c for c in cases if c[0] in problems]:
        params, state = variables["params"], {k: v for k, v in variables.items() if k != "params"}

        def loss_fn(params, data, model=model, tasks=tasks, state=state):
            out = model.apply({"params": params, **state}, data["image"], train=True, mutable=list(state))[0]
            if tasks is None:
                return jnp.stack([jnp.mean((o[..., 0] - data["y"][..., i]) ** 2) for i, o in enumerate(out)])
            return task_losses(out, data, tasks)

        lean = weighted_value_and_grad(loss_fn, jaxmtl.upgrad_weights, shared=shared)
        jac = jaxmtl.value_and_jacobian(loss_fn, shared=shared, chunk_size=None)
        lean_mb = peak_bytes(lambda p, d: lean(p, d)[2], params, data) / 2**20
        jac_mb = peak_bytes(lambda p, d: jac(p, d)[1], params, data) / 2**20
        rows.append({"problem": label, "T": t, "lean_mb": lean_mb, "jacobian_mb": jac_mb,
                     "ratio": lean_mb / jac_mb})
        log(f"{label} T={t}: lean UPGrad {lean_mb:.1f} MiB, one-vmap Jacobian {jac_mb:.1f} MiB "
            f"(x{lean_mb / jac_mb:.2f})")
    return rows


def markdown(rows: list[dict], mem: list[dict]) -> str:
    lines = ["| problem | T | batch | method | step (ms) | Jacobian+mean step (ms) | / Jacobian+mean (quartiles) | "
             "EW step (ms) | / EW (quartiles) | exact-Gramian flops / EW flops |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    lines += [f"| {r['problem']} | {r['T']} | {r['batch']} | {r['method']} | {r['ms']:.1f} | {r['mean_ms']:.1f} | "
              f"{r['vs_mean']:.2f} ({r['vs_mean_iqr'][0]:.2f}-{r['vs_mean_iqr'][1]:.2f}) | {r['ew_ms']:.1f} | "
              f"{r['vs_ew']:.2f} ({r['vs_ew_iqr'][0]:.2f}-{r['vs_ew_iqr'][1]:.2f}) | {r['floor']:.2f} |" for r in rows]
    if mem:
        lines += ["", "| problem | T | lean UPGrad path (MiB) | shared-only Jacobian, one vmap (MiB) | ratio |",
                  "|---|---|---|---|---|"]
        lines += [f"| {r['problem']} | {r['T']} | {r['lean_mb']:.0f} | {r['jacobian_mb']:.0f} | {r['ratio']:.2f} |"
                  for r in mem]
    return "\n".join(lines)
