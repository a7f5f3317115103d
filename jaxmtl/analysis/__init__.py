"""Analysis tools of the studies: gradient conflict and magnitude statistics,
per-sample Jacobians, Pareto fronts, loss-scale probes and corruption transfer."""
from jaxmtl.analysis.conflict import GROUPS, STATISTICS, conflict_statistics, pairwise_similarity, spread
from jaxmtl.analysis.loss_scale import relative_difference
from jaxmtl.analysis.pareto import pareto_counts, pareto_mask
from jaxmtl.analysis.per_sample import per_sample_jacobian
from jaxmtl.analysis.transfer import corruption_delta

__all__ = ["GROUPS", "STATISTICS", "conflict_statistics", "corruption_delta", "pairwise_similarity",
           "pareto_counts", "pareto_mask", "per_sample_jacobian", "relative_difference", "spread"]
