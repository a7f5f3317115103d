"""Pure-JAX inner solvers with fixed iteration budgets."""
from jaxmtl.solvers.active_set import nonneg_qp, simplex_qp
from jaxmtl.solvers.barrier import power_root

__all__ = ["nonneg_qp", "power_root", "simplex_qp"]
