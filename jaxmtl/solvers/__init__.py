"""Pure-JAX inner solvers with fixed iteration budgets."""
from jaxmtl.solvers.active_set import nonneg_qp, simplex_qp

__all__ = ["nonneg_qp", "simplex_qp"]
