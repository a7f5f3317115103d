"""Pure-JAX inner solvers with fixed iteration budgets."""
from jaxmtl.solvers.active_set import nonneg_qp, simplex_qp
from jaxmtl.solvers.barrier import power_root
from jaxmtl.solvers.implicit import implicit_root
from jaxmtl.solvers.projection import project_simplex

__all__ = ["implicit_root", "nonneg_qp", "power_root", "project_simplex", "simplex_qp"]
