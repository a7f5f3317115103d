"""Methods at the shared representation: the train step of paper C's IMTL, MGDA-UB and GradDrop.

A method normally combines the task gradients of the shared *parameters*. Some
papers apply it to the gradients with respect to the shared *representation*
``z`` (the trunk's output) instead: IMTL-G (Liu et al. 2021) and MGDA-UB (Sener
& Koltun 2018, the "upper bound" that avoids ``T`` trunk backward passes), and
GradDrop (Chen et al. 2020) on a shared activation; paper C (Gama & Grassi 2025)
runs them so. The step here does it for any Flax model, as written:

1. one forward pass; the trunk's output ``z`` is read with Flax's
   ``capture_intermediates`` (the submodule named ``module``);
2. the heads are run on ``z`` by intercepting that submodule's call
   (``flax.linen.intercept_methods``), and ``T`` backward passes *through the
   heads only* give the representation Jacobian ``J_z`` ``(T, *z.shape)``;
3. the method (any jaxmtl transformation, with ``losses=``) turns ``J_z`` into one
   cotangent of ``z``; it also gets ``z`` itself as its ``params`` argument (GradDrop's
   activation signs);
4. one backward pass of that cotangent through the trunk gives the trunk's
   gradient; the heads get ``sum_t h_t grad L_t`` with ``h_t`` from ``head_weights``
   (default 1: the plain sum, as the official code gives MGDA-UB's and GradDrop's
   heads; IMTL's are weighted by its loss scales ``exp(s_t)``);
5. ``tx`` (the model's optimiser) steps on that gradient.

The cost is one forward pass, ``T`` backward passes through the heads and one
through the trunk: a Gramian-free path for any ``T``. For a weighting method the
trunk's update equals the weights, computed from the representation Gramian,
applied to the parameter gradients (``J_theta^T w = (dz/dtheta)^T J_z^T w``).

Dropout: both passes use the step's key, so the heads see the same masks in both
(Flax derives a submodule's draws from its path). Batch statistics: the trunk's
come from the first pass, the heads' from the second, each updated once.
"""
from __future__ import annotations

from typing import Any, Callable, NamedTuple, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax

from jaxmtl.aggregators.rotograd import rotate, rotation_loss, rotation_matrices
from jaxmtl.data.tasks import Task
from jaxmtl.protocol import find_method_state
from jaxmtl.training.steps import split_variables, task_losses


ROTATIONS = "rotations"
"""The parameters' entry holding RotoGrad's rotations (``skew``, ``(T, d, d)``) in a rotated model."""


class RepresentationState(NamedTuple):
    """Optimiser state of a representation step: the method's, the model optimiser's and,
    with rotations, the rotations' optimiser's."""

    method: Any
    model: Any
    rotations: Any = None


def rotated(apply_fn: Callable[..., Any], heads: Sequence[str], parametrization: str = "expm") -> Callable[..., Any]:
    """``apply_fn`` with RotoGrad's rotations (Javaloy & Valera 2022) between the trunk and the heads.

    The rotations' parameters are ``params[ROTATIONS]`` (``(T, d, d)``, see
    :func:`jaxmtl.aggregators.rotograd.rotation_matrices`; zeros: identities); the call of the
    top-level submodule ``heads[t]`` gets ``R_t z`` in place of its first argument ``z``.
    ``R_t`` is held fixed (``stop_gradient``): the task losses do not train it (its update is
    :func:`jaxmtl.aggregators.rotograd.rotation_loss`'s, in the representation step), as in
    the official implementation. The model is not rewritten: the heads' calls are intercepted.
    """
    heads = tuple(heads)

    def apply(variables, x, **kw):
        params = dict(variables["params"])
        if ROTATIONS not in params:
            raise ValueError(f"a rotated model needs params[{ROTATIONS!r}] (T, d, d); got entries {sorted(params)}")
        rot = jax.lax.stop_gradient(rotation_matrices(params.pop(ROTATIONS), parametrization))

        def rotate_input(next_fun, args, kwargs, context):
            path = tuple(context.module.path)
            if context.method_name == "__call__" and len(path) == 1 and path[0] in heads:
                t = heads.index(path[0])
                return next_fun(rotate(rot[t:t + 1], args[0])[0], *args[1:], **kwargs)
            return next_fun(*args, **kwargs)

        with nn.intercept_methods(rotate_input):
            return apply_fn({**variables, "params": params}, x, **kw)

    return apply


def with_rotations(variables: dict, apply_fn: Callable[..., Any], example: jax.Array, module: str,
                   num_tasks: int) -> dict:
    """The parameters of ``variables`` with identity rotations (zeros ``(T, d, d)``) for the
    representation of ``d`` features (its last axis) that ``module`` outputs on ``example``."""
    encode, _ = split_at(apply_fn, module)
    z = jax.eval_shape(lambda: encode(variables, example, train=False)[0])
    if not isinstance(z, jax.ShapeDtypeStruct):
        raise ValueError(f"RotoGrad's rotations need the representation as one array of features; the "
                         f"submodule {module!r} returns {jax.tree.structure(z)}")
    d = z.shape[-1]
    return {**variables["params"], ROTATIONS: jnp.zeros((num_tasks, d, d), jnp.float32)}


def split_at(apply_fn: Callable[..., Any], module: str) -> tuple[Callable[..., Any], Callable[..., Any]]:
    """``(encode, decode)`` of a Flax model at the output of its top-level submodule ``module``.

    ``encode(variables, x, **kw) -> (z, collections)`` runs the model and returns that
    submodule's output; ``decode(variables, z, x, **kw) -> (outputs, collections)`` runs it
    with the submodule's call replaced by ``z`` (the trunk is not computed). ``kw`` goes to
    ``apply_fn`` (``train=``, ``rngs=``, ``mutable=``); ``collections`` are the mutated ones.
    """

    def is_trunk(mdl, method_name):
        return method_name == "__call__" and tuple(mdl.path) == (module,)

    def encode(variables, x, *, mutable=(), **kw):
        _, cols = apply_fn(variables, x, capture_intermediates=is_trunk,
                           mutable=[*mutable, "intermediates"], **kw)
        found = cols.pop("intermediates", {}).get(module, {}).get("__call__")
        if found is None:
            raise ValueError(f"the model has no top-level submodule named {module!r} (its output is the "
                             "shared representation); name it, or choose another module")
        return found[0], cols

    def decode(variables, z, x, *, mutable=(), **kw):
        def replace(next_fun, args, kwargs, context):
            return z if is_trunk(context.module, context.method_name) else next_fun(*args, **kwargs)

        with nn.intercept_methods(replace):
            if mutable:
                return apply_fn(variables, x, mutable=list(mutable), **kw)
            return apply_fn(variables, x, **kw), {}

    return encode, decode


def merge_collections(trunk: dict, heads: dict, module: str) -> dict:
    """Mutated collections after both passes: ``module``'s entries from the trunk's pass,
    every other entry from the heads' pass."""
    out = {}
    for name in set(trunk) | set(heads):
        merged = dict(heads.get(name, {}))
        if module in trunk.get(name, {}):
            merged[module] = trunk[name][module]
        out[name] = merged
    return out


def make_representation_train_step(apply_fn: Callable[..., Any], method: optax.GradientTransformation,
                                   tx: optax.GradientTransformation, tasks: Sequence[Task], *,
                                   module: str = "encoder", input_key: str = "image",
                                   head_weights: Callable[[Any], jax.Array] | None = None,
                                   probe: Callable[[Any, Any], Any] | None = None,
                                   rotation_tx: optax.GradientTransformation | None = None,
                                   parametrization: str = "expm"):
    """A jitted ``step(variables, opt_state, batch, rng) -> (variables, opt_state, losses[, probe])``
    with ``method`` applied at the output of submodule ``module`` (see the module's text).

    ``opt_state`` is ``init(params)``'s :class:`RepresentationState` (``init`` is returned
    with ``step``). ``tx`` is the model's optimiser on the summed gradient (no method in
    it). ``head_weights(method_state) -> f32[T]`` weights the heads' gradients (default:
    1 each). ``probe(task_grads, params)``, as in
    :func:`jaxmtl.training.make_task_train_step`, gets ``{module: J_z}``, the
    representation Jacobian, and the parameters.

    ``rotation_tx``: RotoGrad's rotations are trained too: ``apply_fn`` is
    :func:`rotated`, ``params[ROTATIONS]`` holds them (:func:`with_rotations`), and they
    take one step of ``rotation_tx`` (the official code: Adam at the model's learning rate
    times ``lr_relation``, no weight decay) on :func:`~jaxmtl.aggregators.rotograd.rotation_loss`
    of the representation Jacobian (taken with respect to the unrotated ``z``); ``tx``
    leaves them alone.
    """
    tasks = tuple(tasks)
    encode, decode = split_at(apply_fn, module)
    method = optax.with_extra_args_support(method)

    def model_part(tree):
        return {k: v for k, v in tree.items() if k != ROTATIONS} if rotation_tx is not None else tree

    def init(params):
        rot = None if rotation_tx is None else rotation_tx.init(params[ROTATIONS])
        return RepresentationState(method.init(None), tx.init(model_part(params)), rot)

    @jax.jit
    def step(variables, opt_state, batch, rng):
        params, state = split_variables(variables)
        x, kw = batch[input_key], dict(train=True, rngs={"dropout": rng}, mutable=tuple(state))
        z, trunk_vjp, trunk_cols = jax.vjp(lambda p: encode({"params": p, **state}, x, **kw), params,
                                           has_aux=True)

        def head_losses(p, rep):
            out, cols = decode({"params": p, **state}, rep, x, **kw)
            return task_losses(out, batch, tasks), cols

        losses, heads_vjp, head_cols = jax.vjp(head_losses, params, z, has_aux=True)
        t = losses.shape[0]
        rep_grads = jax.vmap(lambda c: heads_vjp(c)[1])(jnp.eye(t, dtype=losses.dtype))
        cotangent, method_state = method.update(rep_grads, opt_state.method, z, losses=losses)
        h = jnp.ones((t,), losses.dtype) if head_weights is None else head_weights(method_state)
        head_grads = heads_vjp(jnp.asarray(h, losses.dtype))[0]
        cotangent = jax.tree.map(lambda c, rep: c.astype(rep.dtype), cotangent, z)   # z: any pytree of features
        grads = jax.tree.map(jnp.add, trunk_vjp(cotangent)[0], head_grads)
        updates, model_state = optax.with_extra_args_support(tx).update(
            model_part(grads), opt_state.model, model_part(params), value=jnp.sum(losses))
        rot_state = None
        if rotation_tx is not None:
            loss_of = lambda s: rotation_loss(rotation_matrices(s, parametrization), rep_grads)  # noqa: E731
            rot_updates, rot_state = optax.with_extra_args_support(rotation_tx).update(
                jax.grad(loss_of)(params[ROTATIONS]), opt_state.rotations, params[ROTATIONS], value=jnp.sum(losses))
            updates = {**updates, ROTATIONS: rot_updates}
        new = {"params": optax.apply_updates(params, updates), **merge_collections(trunk_cols, head_cols, module)}
        out = new, RepresentationState(method_state, model_state, rot_state), losses
        return out if probe is None else (*out, probe({module: rep_grads}, params))

    return init, step


def loss_scale_weights(method_state: Any) -> jax.Array:
    """``exp(s_t)``: IMTL-L's loss scales, the weights of IMTL's heads in paper C's code."""
    return jnp.exp(find_method_state(method_state).log_scale)
