"""RotoGrad: gradient homogenisation by per-task rotations and magnitude scaling.

Javaloy & Valera (2022), "RotoGrad: Gradient Homogenization in Multitask
Learning via Rotations". Two parts, both on the gradients with respect to the
shared representation ``z = backbone(x)``:

* **magnitudes**: :func:`rotograd`, a Gramian method (give it the
  representation Gramian, or apply it to the representation Jacobian itself);
* **directions**: task ``k``'s head sees ``R_k z`` with a learned rotation ``R_k``
  (:func:`rotation_matrices` of a skew-symmetric parameter; Flax module
  :class:`jaxmtl.models.Rotations`), trained by its own optimiser on
  :func:`rotation_loss` to bring the task's gradient close to a common one.

:func:`make_rotograd_step` puts them together in a jittable train step.
"""
from __future__ import annotations

from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import optax

from jaxmtl._checks import check, one_of, task_count
from jaxmtl.gramians import ScaledGramian, cosine_form
from jaxmtl.protocol import initial_weights, method_state, no_skips, weighted_method
from jaxmtl.registry import register

__all__ = ["RotoGradState", "RotoGradStepState", "make_rotograd_step", "rotate", "rotation_loss",
           "rotation_matrices", "rotograd", "rotograd_weights"]

PARAMETRIZATIONS = ("expm", "cayley")


def rotograd_weights(gramian: jax.Array | ScaledGramian, *,
                     initial_norms: jax.Array | None = None) -> jax.Array:
    """RotoGrad's magnitude weights from a Gramian of any origin; see :func:`rotograd`.

    ``initial_norms``: the task-gradient norms at the reference step (``None``: the
    current ones, i.e. every convergence ratio is 1).
    """
    cf = cosine_form(gramian)
    n = cf.norms
    if initial_norms is None:
        ratios = jnp.ones_like(n)
    else:
        n0 = jnp.asarray(initial_norms, jnp.float32)
        absolute = cf.scale * n
        ratios = jnp.where(n0 > 0, absolute / jnp.where(n0 > 0, n0, 1.0), 0.0)
    alpha = ratios / jnp.maximum(jnp.sum(ratios), 1e-15)
    common = jnp.sum(alpha * n)                       # sum_k alpha_k |g_k|, in units of the scale
    return jnp.where(cf.alive, common / jnp.where(cf.alive, n, 1.0), 0.0)


@method_state
class RotoGradState(NamedTuple):
    """State of :func:`rotograd`."""

    step: jax.Array             # i32[]: updates so far
    initial_norms: jax.Array    # f32[T]: the task-gradient norms at the reference step
    weights: jax.Array          # f32[T]: the last weights
    skipped: jax.Array          # i32[]: non-finite steps skipped


@register("rotograd", "RotoGrad (scaling)", "gramian", "Javaloy & Valera 2022", weights=rotograd_weights,
          needs_num_tasks=True, scale="linear", task_scale="direction", one_task_identity=True)
def rotograd(burn_in: int = 20, *, num_tasks: int | None = None) -> optax.GradientTransformationExtraArgs:
    """RotoGrad's gradient-magnitude homogenisation.

    Javaloy & Valera (2022) (the scaling part; the rotations are
    :class:`jaxmtl.models.Rotations`, :func:`rotation_loss` and :func:`make_rotograd_step`).
    Update rule: with ``n_k = |g_k|`` and ``n_k^0`` its value at the reference step (the
    first update, then update ``burn_in``), the convergence ratios ``r_k = n_k / n_k^0``
    give ``alpha = r / sum(r)`` and

        d = C sum_k g_k / |g_k|,      C = sum_k alpha_k |g_k|,

    every task's gradient rescaled to the same norm ``C``, larger for tasks that
    have converged least (so ``w_k = C / |g_k|``). Linear under a common rescaling;
    the direction of ``d`` is invariant to per-task rescaling; permutation
    invariant.

    The paper applies it to the gradients with respect to the shared
    representation ``z`` (over the whole batch): pass their Gramian as the
    ``gramian=`` extra argument (:func:`jaxmtl.representation_gramian`), or apply
    the method to the representation Jacobian itself and backpropagate the
    result through the backbone (as :func:`make_rotograd_step` does). On the
    shared parameters' Jacobian it is the same rule on parameter gradients.

    Args:
      burn_in: the update at which the reference norms are taken again, ``20``
        (official ``burn_in_period``).
      num_tasks: the number of tasks (required: the state holds the reference norms).

    Returns:
      An ``optax.GradientTransformationExtraArgs`` with a :class:`RotoGradState`;
      its public weighting is :func:`rotograd_weights`.

    References:
      - Javaloy & Valera (2022). "RotoGrad: Gradient Homogenization in Multitask Learning via
        Rotations"
    """
    check("burn_in", burn_in, lambda v: v >= 0, "a non-negative integer")
    t = task_count(num_tasks, "rotograd", "its state holds the reference gradient norms")

    def init_fn(params):
        del params
        return RotoGradState(jnp.zeros((), jnp.int32), jnp.ones((t,), jnp.float32), initial_weights(t),
                             no_skips())

    def weight_fn(gram, state, **_):
        cf = cosine_form(gram)
        reset = (state.step == 0) | (state.step == burn_in)
        n0 = jnp.where(reset, cf.scale * cf.norms, state.initial_norms)
        w = rotograd_weights(gram, initial_norms=n0)
        return w, state._replace(step=state.step + 1, initial_norms=n0)

    return weighted_method(weight_fn, name="rotograd", num_tasks=t, init_fn=init_fn)


def rotation_matrices(skew: jax.Array, parametrization: str = "expm") -> jax.Array:
    """Rotations ``(..., d, d)`` from unconstrained parameters ``(..., d, d)``.

    The strictly upper triangle ``U`` of ``skew`` gives the skew-symmetric
    ``A = U - U^T``; ``'expm'``: ``R = expm(A)`` (the official code's trivialisation,
    via geotorch); ``'cayley'``: ``R = (I - A)^-1 (I + A)``. Zero parameters give
    the identity. ``R`` is special orthogonal for any ``skew``.
    """
    one_of("parametrization", parametrization, PARAMETRIZATIONS)
    skew = jnp.asarray(skew, jnp.float32)
    u = jnp.triu(skew, 1)
    a = u - jnp.swapaxes(u, -1, -2)
    if parametrization == "expm":
        return jax.scipy.linalg.expm(a)
    eye = jnp.eye(a.shape[-1], dtype=a.dtype)
    return jnp.linalg.solve(eye - a, eye + a)


def rotate(rotations: jax.Array, z: jax.Array) -> jax.Array:
    """``R_k z`` for every task: rotations ``(T, d, d)``, features ``(..., d)`` -> ``(T, ..., d)``."""
    return jnp.einsum("kij,...j->k...i", rotations, z, precision="highest")


def rotation_loss(rotations: jax.Array, rep_grads: jax.Array) -> jax.Array:
    """RotoGrad's loss of the rotations (differentiate it with respect to their parameters).

    ``rep_grads``: ``(T, ..., d)``, task ``k``'s gradient with respect to the
    *unrotated* representation ``z`` (``g_k = R_k^T h_k``, ``h_k`` the gradient with
    respect to ``R_k z``). The common target is the mean of the gradients each
    rescaled to the norm of their mean, ``v = mean_k g_k |mean_j g_j| / |g_k|``
    (norms over the whole batch), and

        loss = sum_k mean_b |R_k v_b - h_k,b|^2,

    with ``v`` and ``h_k = R_k g_k`` held fixed: ``R_k`` learns to map the common
    direction onto the one its head asks for, so that the gradient it passes
    back, ``R_k^T h_k``, moves towards ``v``. (Official ``RotateOnly._rep_grad``.)
    """
    g = jax.lax.stop_gradient(jnp.asarray(rep_grads, jnp.float32))
    t = g.shape[0]
    flat = g.reshape(t, -1)
    norms = jnp.linalg.norm(flat, axis=1)
    mean_norm = jnp.linalg.norm(jnp.mean(flat, axis=0))
    scale = jnp.where(norms > 0, mean_norm / jnp.where(norms > 0, norms, 1.0), 0.0)
    target = jnp.mean(g * scale.reshape((t,) + (1,) * (g.ndim - 1)), axis=0)     # (..., d)
    fixed = jax.lax.stop_gradient(rotations)
    h = jnp.einsum("kij,k...j->k...i", fixed, g, precision="highest")
    residual = rotate(rotations, target) - h
    per_sample = jnp.sum(residual**2, axis=-1)                                    # (T, ...)
    return jnp.sum(jnp.mean(per_sample.reshape(t, -1), axis=1))


class RotoGradStepState(NamedTuple):
    """State of a :func:`make_rotograd_step` train step."""

    model: Any          # the model optimiser's state
    method: Any         # the magnitude method's state (e.g. RotoGradState)
    rotations: Any      # the rotations optimiser's state


def make_rotograd_step(encode: Callable[..., jax.Array], head_losses: Callable[..., jax.Array],
                       tx: optax.GradientTransformation, rotation_tx: optax.GradientTransformation, *,
                       method: optax.GradientTransformation | None = None, num_tasks: int,
                       parametrization: str = "expm"):
    """A RotoGrad train step: ``(init, step)``, ``step`` jittable.

    * ``encode(params, batch) -> z``: the shared backbone, features ``(..., d)``
      (flatten conv features first), using the backbone leaves of ``params``;
    * ``head_losses(params, zs, batch) -> f32[T]``: the task losses, head ``k``
      reading ``zs[k]`` (``zs = R_k z`` stacked, ``(T, ..., d)``), using the head leaves;
    * ``tx``: the model's optimiser; ``rotation_tx``: the rotations' (the authors
      advise a smaller learning rate);
    * ``method``: the combination of the representation gradients, default
      :func:`rotograd` (``jaxmtl.linear()`` gives the authors' *RotateOnly*).

    ``init(params, skew) -> state`` with ``skew`` ``(T, d, d)`` (zeros: identity
    rotations, as in the official code). ``step(params, skew, state, batch) ->
    (params, skew, state, losses)``: one forward pass; ``T`` backward passes
    through the heads give the representation Jacobian ``(T, ..., d)``; the
    method combines it into one representation gradient, backpropagated once
    through the backbone; the heads get the gradient of ``sum_k L_k`` (the
    rotation is held fixed in the forward pass, as in the official code); the
    rotations take one step of ``rotation_tx`` on :func:`rotation_loss`.

    Left out of the official implementation: rotating only part of a feature map
    (``rotation_shape``/``post_shape``), loss normalisation by the initial losses
    for the heads (``normalize_losses``, off by default there), RotoGradNorm, and
    the cached rotation matrices (here recomputed once per step).
    """
    one_of("parametrization", parametrization, PARAMETRIZATIONS)
    method = rotograd(num_tasks=num_tasks) if method is None else method
    method = optax.with_extra_args_support(method)

    def init(params, skew):
        return RotoGradStepState(tx.init(params), method.init(None), rotation_tx.init(skew))

    def step(params, skew, state, batch):
        z, backbone_vjp = jax.vjp(lambda p: encode(p, batch), params)
        rot = rotation_matrices(skew, parametrization)
        fixed = jax.lax.stop_gradient(rot)
        losses, heads_vjp = jax.vjp(lambda p, z: head_losses(p, rotate(fixed, z), batch), params, z)
        t = losses.shape[0]
        if t != num_tasks:
            raise ValueError(f"head_losses returned {t} losses; the step was built for {num_tasks} tasks")
        eye = jnp.eye(t, dtype=losses.dtype)
        rep_grads = jax.vmap(lambda c: heads_vjp(c)[1])(eye)          # (T, *z.shape)
        head_grads = heads_vjp(jnp.ones((t,), losses.dtype))[0]
        rep_update, method_state = method.update(rep_grads, state.method, z, losses=losses)
        backbone_grads = backbone_vjp(rep_update.astype(z.dtype))[0]
        grads = jax.tree.map(jnp.add, backbone_grads, head_grads)
        updates, model_state = tx.update(grads, state.model, params)
        rot_grads = jax.grad(lambda s: rotation_loss(rotation_matrices(s, parametrization), rep_grads))(skew)
        rot_updates, rot_state = rotation_tx.update(rot_grads, state.rotations, skew)
        return (optax.apply_updates(params, updates), optax.apply_updates(skew, rot_updates),
                RotoGradStepState(model_state, method_state, rot_state), losses)

    return init, step

