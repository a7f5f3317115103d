"""jaxmtl: multi-task learning methods as optax transformations.

    losses, task_grads = jaxmtl.value_and_jacobian(loss_fn)(params, batch)
    tx = optax.chain(jaxmtl.upgrad(), optax.adam(1e-3))
    updates, state = tx.update(task_grads, state, params, losses=losses)

The core (this namespace) needs jax, optax, chex and numpy only; data sets,
models, training loops and analysis of the studies live in the sub-packages
``jaxmtl.data``, ``jaxmtl.models``, ``jaxmtl.training`` (the ``experiments``
extra) and ``jaxmtl.analysis``.
"""
from jaxmtl import registry, sharding
from jaxmtl.aggregators import (CDTTState, DBMTLState, ExcessMTLState, GradDropState, GradVacState,
                                IMTLState, MoCoState, NashMTLState, PCGradState, RotoGradState, aligned_mtl,
                                aligned_mtl_weights, cagrad, cagrad_weights, cdtt, cdtt_weights, con_fig,
                                con_fig_weights, db_mtl, dualproj, dualproj_weights, edm, edm_weights,
                                excess_mtl, fairgrad, fairgrad_weights, graddrop, gradvac, gradvac_weights,
                                imtl, imtl_g, imtl_g_weights, imtl_weights, mgda, mgda_weights, moco, modo,
                                nash_mtl, nash_mtl_weights, pcgrad, pcgrad_weights, rotograd,
                                rotograd_weights, sdmgrad, upgrad, upgrad_weights)
from jaxmtl.aggregators.rotograd import (RotoGradStepState, make_rotograd_step, rotate, rotation_loss,
                                         rotation_matrices)
from jaxmtl.gramians import (CosineForm, ScaledGramian, combine, cosine_form, cross_gramian, gramian,
                            num_tasks, scaled_gramian)
from jaxmtl.gramian_path import weighted_value_and_grad
from jaxmtl.heads_jacobian import value_and_jacobian_by_heads
from jaxmtl.jacobians import jacobian, representation_gramian, value_and_jacobian
from jaxmtl.layerwise import Dense, layerwise_value_and_gramian, layerwise_weighted_value_and_grad
from jaxmtl.masking import path_mask, resolve_mask
from jaxmtl.protocol import (WeightsState, find_method_state, method, method_state, recorded_weights,
                           weighted_method)
from jaxmtl.optim import adatask, mtl_io, per_task, signum
from jaxmtl.partitioning import PartitionState, partition
from jaxmtl.weighting import (AutoLambdaState, DWAState, FAMOState, GradNormState, IMTLLState, RLWState,
                              UncertaintyState, auto_lambda, dwa, famo, geometric_mean, gradnorm, imtl_l, linear,
                              rlw, scale_invariant, stch, uncertainty, uw_optimal, uw_so)
from jaxmtl.weighting.auto_lambda import (auto_lambda_fd_grad, auto_lambda_grad, make_auto_lambda_step,
                                          virtual_step)
from jaxmtl.wrappers import MultiStepsState, SkipNonfiniteState, multi_steps, skip_nonfinite

__version__ = "0.2.0"

__all__ = [
    # gradient aggregators and their Gramian weightings
    "aligned_mtl", "aligned_mtl_weights", "cagrad", "cagrad_weights", "cdtt", "cdtt_weights", "con_fig",
    "con_fig_weights", "db_mtl", "dualproj", "dualproj_weights", "edm", "edm_weights", "excess_mtl",
    "fairgrad", "fairgrad_weights", "graddrop", "gradvac", "gradvac_weights", "imtl", "imtl_g",
    "imtl_g_weights", "imtl_weights", "mgda", "mgda_weights", "moco", "modo", "nash_mtl",
    "nash_mtl_weights", "pcgrad", "pcgrad_weights", "rotograd", "rotograd_weights", "sdmgrad", "upgrad",
    "upgrad_weights",
    # loss weightings
    "auto_lambda", "dwa", "famo", "geometric_mean", "gradnorm", "imtl_l", "linear", "rlw",
    "scale_invariant", "stch", "uncertainty", "uw_optimal", "uw_so",
    # methods that need more than stacked gradients: their pieces and train steps
    "auto_lambda_fd_grad", "auto_lambda_grad", "make_auto_lambda_step", "virtual_step",
    "RotoGradStepState", "make_rotograd_step", "rotate", "rotation_loss", "rotation_matrices",
    # method states
    "AutoLambdaState", "CDTTState", "DBMTLState", "DWAState", "ExcessMTLState", "FAMOState",
    "GradDropState", "GradNormState", "GradVacState", "IMTLLState", "IMTLState", "MoCoState",
    "NashMTLState", "PCGradState", "RLWState", "RotoGradState", "UncertaintyState", "WeightsState",
    # Jacobians and Gramians
    "CosineForm", "ScaledGramian", "combine", "cosine_form", "cross_gramian", "gramian", "jacobian",
    "num_tasks", "representation_gramian", "scaled_gramian", "value_and_jacobian",
    "value_and_jacobian_by_heads",
    "weighted_value_and_grad", "Dense", "layerwise_value_and_gramian", "layerwise_weighted_value_and_grad",
    # composition
    "MultiStepsState", "PartitionState", "SkipNonfiniteState", "multi_steps", "partition", "path_mask",
    "resolve_mask", "skip_nonfinite",
    # optimisers as an experimental axis
    "adatask", "mtl_io", "per_task", "signum",
    # writing methods
    "find_method_state", "method", "method_state", "recorded_weights", "registry", "sharding",
    "weighted_method",
]
