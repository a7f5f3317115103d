"""Auto-Lambda: task weights learned by a one-step look-ahead on held-out data.

Liu, Liang, Davison & Johns (2022), "Auto-Lambda: Disentangling Dynamic Task
Relationships". The pieces:

* :func:`auto_lambda`: the loss weighting ``d = sum_t lambda_t g_t``, with
  ``lambda`` in its state; an update given the held-out gradient (``val_grad=``)
  first moves ``lambda`` by its meta-gradient;
* :func:`auto_lambda_grad`: that meta-gradient from the training Jacobian and
  the held-out gradient (exact); :func:`auto_lambda_fd_grad`: the official
  finite-difference approximation of it;
* :func:`virtual_step` and :func:`make_auto_lambda_step`: the look-ahead and a
  jittable train step that uses them.
"""
from __future__ import annotations

import warnings
from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import optax

from jaxmtl._checks import as_float, task_count
from jaxmtl.gramians import combine, cross_gramian
from jaxmtl.jacobians import value_and_jacobian
from jaxmtl.protocol import find_method_state, method_state, no_skips, weighted_method
from jaxmtl.registry import register
from jaxmtl.weighting._losses import inner_optimizer, into_window, split_scale

__all__ = ["AutoLambdaState", "auto_lambda", "auto_lambda_fd_grad", "auto_lambda_grad",
           "make_auto_lambda_step", "virtual_step"]


def auto_lambda_grad(task_grads: Any, val_grad: Any, *, virtual_lr: float | jax.Array = 1.0) -> jax.Array:
    """The meta-gradient of the task weights, ``-virtual_lr * J d`` (``f32[T]``).

    ``task_grads``: the training Jacobian ``J`` at ``theta`` (stacked, ``(T, *shape)``
    leaves); ``val_grad``: ``d``, the gradient of the held-out (primary-task) loss
    at the look-ahead parameters ``theta' = theta - virtual_lr * (J^T lambda + ...)``
    (same structure as ``params``; from a held-out Jacobian, ``combine(primary,
    val_jacobian)``). Since ``dtheta'/dlambda_t = -virtual_lr * g_t``, this is
    ``dL_val(theta'(lambda))/dlambda`` exactly: the quantity Auto-Lambda's finite
    difference (:func:`auto_lambda_fd_grad`) approximates.
    """
    if jax.tree.structure(task_grads) != jax.tree.structure(val_grad):
        raise ValueError(
            "auto_lambda: val_grad and task_grads have different tree structures (under "
            "jaxmtl.partition the method sees the shared leaves only): give auto_lambda the full "
            "Jacobian, or pass meta_grad= computed with jaxmtl.auto_lambda_grad on the full model")
    stacked = jax.tree.map(lambda v: jnp.asarray(v)[None], val_grad)
    return -as_float(virtual_lr) * cross_gramian(task_grads, stacked)[:, 0]


def auto_lambda_fd_grad(loss_fn: Callable[..., jax.Array], params: Any, val_grad: Any, *args: Any,
                        virtual_lr: float | jax.Array = 1.0, eps: float = 0.01) -> jax.Array:
    """The official finite-difference meta-gradient: ``-virtual_lr * (L(theta+) - L(theta-)) / (2 e)``.

    ``theta+- = theta +- e d`` with ``e = eps / |d|`` and ``loss_fn(params, *args) ->
    f32[T]`` the training losses: two forward passes instead of the Jacobian (the
    official ``compute_hessian``).
    """
    leaves = jax.tree.leaves(val_grad)
    norm = jnp.sqrt(sum(jnp.sum(jnp.square(x.astype(jnp.float32))) for x in leaves))
    e = eps / jnp.maximum(norm, 1e-30)

    def moved(sign):
        return jax.tree.map(lambda p, d: p + sign * e * d.astype(p.dtype), params, val_grad)

    plus = jnp.asarray(loss_fn(moved(1.0), *args), jnp.float32)
    minus = jnp.asarray(loss_fn(moved(-1.0), *args), jnp.float32)
    return -as_float(virtual_lr) * (plus - minus) / (2.0 * e)


def virtual_step(params: Any, task_grads: Any, weights: jax.Array, *, virtual_lr: float | jax.Array,
                 weight_decay: float | jax.Array = 0.0) -> Any:
    """The look-ahead ``theta' = theta - virtual_lr * (J^T lambda + weight_decay * theta)``."""
    g = combine(weights, task_grads)
    lr, wd = as_float(virtual_lr), as_float(weight_decay)
    return jax.tree.map(lambda p, u: (p - lr * (u + wd * p)).astype(p.dtype), params, g)


@method_state
class AutoLambdaState(NamedTuple):
    """State of :func:`auto_lambda`."""

    weights: jax.Array      # f32[T]: lambda, the learned task weights (used by the last update)
    opt_state: Any          # their optimiser's state
    skipped: jax.Array      # i32[]: non-finite steps skipped


@register("auto_lambda", "Auto-Lambda", "loss", "Liu et al. 2022", needs_num_tasks=True,
          extra_args=("val_grad",), scale="linear")
def auto_lambda(lr: float = 1e-4, *, init: float = 0.1, optimizer: optax.GradientTransformation | None = None,
                num_tasks: int | None = None) -> optax.GradientTransformationExtraArgs:
    """Auto-Lambda: task weights learned by a one-step look-ahead on held-out data.

    Liu, Liang, Davison & Johns (2022). Update rule: the loss is ``sum_t lambda_t L_t``.
    Before each model step, ``lambda`` takes one step of its own optimiser (Adam(``lr``)) on
    the held-out loss after a virtual SGD step,

        theta'(lambda) = theta - a * (sum_t lambda_t g_t + wd * theta),
        dL_val(theta')/dlambda_t = -a * g_t . d,     d = grad L_val(theta'),

    (``a`` the model's current learning rate, ``L_val`` the primary tasks' loss on
    a held-out batch); the model step then uses the new ``lambda``:
    ``d = sum_t lambda_t g_t``. ``lambda`` starts at ``init`` and is not constrained.

    Extra arguments of ``update``: ``val_grad`` (``d``, parameter-shaped), with
    ``virtual_lr`` (``a``, default 1; Adam is nearly invariant to it), or
    ``meta_grad`` (``f32[T]``, e.g. from :func:`auto_lambda_fd_grad`). Without
    either, ``lambda`` is kept (evaluation steps, or no held-out batch), and the
    first such update of each transformation warns that ``lambda`` is not learned. The
    meta-gradient from ``val_grad`` is :func:`auto_lambda_grad`, exact from the
    Jacobian in hand; the official code approximates the same ``g_t . d`` by a
    central finite difference of the losses (two forward passes). Use the full
    Jacobian (heads included), not :func:`jaxmtl.partition`'s shared part, for
    the meta-gradient of the whole model. :func:`make_auto_lambda_step` is a
    complete train step. The meta-gradient is formed from ``J`` and ``d`` divided by
    powers of two and, when its magnitude is outside ``[2^-40, 2^40]``, handed to the
    optimiser divided by a power of two (Adam's step is unchanged up to its ``eps``):
    finite for any float32 ``J`` and ``d``, where ``J d`` itself may exceed float32.

    Args:
      lr: learning rate of the default optimiser of ``lambda``, ``adam(lr)``,
        ``1e-4`` (official ``autol_lr`` for dense prediction; 3e-4 for CIFAR-100).
      init: the initial weights, ``0.1`` (official ``autol_init``).
      optimizer: the optimiser of ``lambda`` (default ``adam(lr)``; static under
        ``optax.inject_hyperparams``).
      num_tasks: the number of tasks (required: the state holds ``lambda``).

    Returns:
      An ``optax.GradientTransformationExtraArgs`` with an :class:`AutoLambdaState`.

    References:
      - Liu, Liang, Davison & Johns (2022). "Auto-Lambda: Disentangling Dynamic Task Relationships"
    """
    t = task_count(num_tasks, "auto_lambda", "its state holds the learned task weights")
    opt = inner_optimizer(optimizer, lr)
    warned = []   # one warning per transformation (at trace time: once per compiled step)

    def init_fn(params):
        del params
        lam = jnp.full((t,), 1.0, jnp.float32) * as_float(init)
        return AutoLambdaState(lam, opt.init(lam), no_skips())

    def weight_fn(gram, state, *, t, extra, grads, **_):
        del gram
        lam = state.weights
        meta = extra.get("meta_grad")
        val_grad = extra.get("val_grad")
        exponent = 0
        if meta is None and val_grad is not None:
            # -a J d from J / 2^e and d / 2^f (exact powers of two): finite for any float32 J and d
            (grads, e), (val_grad, f) = split_scale(grads), split_scale(val_grad)
            meta = auto_lambda_grad(grads, val_grad, virtual_lr=extra.get("virtual_lr", 1.0))
            exponent = e + f
        if meta is None:
            if not warned:
                warned.append(True)
                warnings.warn("auto_lambda got neither val_grad nor meta_grad: its task weights stay at "
                              "their current value, Auto-Lambda learns them from the gradient of a held-out "
                              "loss (pass val_grad=, or use jaxmtl.make_auto_lambda_step)", stacklevel=2)
            return lam, state
        meta = jnp.asarray(meta, jnp.float32)
        if meta.shape != (t,):
            raise ValueError(f"auto_lambda: meta_grad has shape {meta.shape}; expected ({t},)")
        meta = into_window(meta, exponent)   # Adam squares it (its step is scale-free up to eps)
        upd, opt_state = opt.update(meta, state.opt_state, lam)
        lam = optax.apply_updates(lam, upd)
        return lam, state._replace(weights=lam, opt_state=opt_state)

    return weighted_method(weight_fn, name="auto_lambda", num_tasks=t, init_fn=init_fn, uses_gramian=False)


def make_auto_lambda_step(loss_fn: Callable[..., jax.Array], tx: optax.GradientTransformation, *,
                          primary: jax.Array | None = None, weight_decay: float = 0.0,
                          finite_difference: bool = False):
    """A jittable Auto-Lambda train step ``step(params, opt_state, batch, val_batch, lr)``.

    ``loss_fn(params, batch) -> f32[T]``; ``tx`` a chain that starts with
    :func:`auto_lambda` (e.g. ``optax.chain(jaxmtl.auto_lambda(num_tasks=T),
    optax.adam(lr))``); ``lr`` the model's current learning rate (the virtual
    step's, traced: schedules work). One step, as in the official trainer:

    1. ``losses, J = value_and_jacobian(loss_fn)(params, batch)``;
    2. ``theta' = theta - lr (J^T lambda + weight_decay * theta)`` (:func:`virtual_step`;
       the official code adds SGD's momentum buffer when the model optimiser has
       one: with Adam, as in Gama & Grassi, it adds nothing);
    3. ``d = grad(primary . loss_fn(., val_batch))(theta')`` (``primary``: which tasks
       the held-out loss counts, default all: multi-task learning);
    4. ``tx.update(J, opt_state, params, losses=losses, val_grad=d, virtual_lr=lr)``
       (with ``finite_difference``: the official finite difference, passed as
       ``meta_grad``), which updates ``lambda`` and returns ``sum_t lambda_t g_t``
       through the rest of the chain.

    Returns ``(params, opt_state, losses)``. The held-out batch comes from a second
    iterator over the training set in the official trainer (and from the
    validation split in Gama & Grassi's).
    """

    def step(params, opt_state, batch, val_batch, lr):
        losses, jac = value_and_jacobian(loss_fn)(params, batch)
        t = losses.shape[0]
        state = find_method_state(opt_state)
        if not isinstance(state, AutoLambdaState):
            raise ValueError("make_auto_lambda_step: tx must contain jaxmtl.auto_lambda(num_tasks=T)")
        lam = state.weights
        ahead = virtual_step(params, jac, lam, virtual_lr=lr, weight_decay=weight_decay)
        pri = jnp.ones((t,), jnp.float32) if primary is None else jnp.asarray(primary, jnp.float32)
        val_grad = jax.grad(lambda p: pri @ jnp.asarray(loss_fn(p, val_batch), jnp.float32))(ahead)
        if finite_difference:
            extra = {"meta_grad": auto_lambda_fd_grad(loss_fn, params, val_grad, batch, virtual_lr=lr)}
        else:
            extra = {"val_grad": val_grad, "virtual_lr": lr}
        updates, opt_state = tx.update(jac, opt_state, params, losses=losses, **extra)
        return optax.apply_updates(params, updates), opt_state, losses

    return step
