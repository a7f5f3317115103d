"""Analysis tools of the studies: gradient conflict and magnitude statistics,
per-sample Jacobians, Pareto fronts, loss-scale probes, corruption transfer, and
trajectory quantities (sharpness, Fisher trace, gradient noise scale, coherence,
update cosines)."""
from jaxmtl.analysis.coherence import gradient_coherence, update_cosines
from jaxmtl.analysis.conflict import GROUPS, STATISTICS, conflict_statistics, pairwise_similarity, spread
from jaxmtl.analysis.fisher import fisher_trace
from jaxmtl.analysis.loss_scale import relative_difference
from jaxmtl.analysis.noise_scale import NoiseScale, gradient_noise_scale
from jaxmtl.analysis.pareto import pareto_counts, pareto_mask
from jaxmtl.analysis.per_sample import per_sample_jacobian
from jaxmtl.analysis.sharpness import hessian_top_eigenvalue
from jaxmtl.analysis.transfer import corruption_delta

__all__ = ["GROUPS", "STATISTICS", "NoiseScale", "conflict_statistics", "corruption_delta", "fisher_trace",
           "gradient_coherence", "gradient_noise_scale", "hessian_top_eigenvalue", "pairwise_similarity",
           "pareto_counts", "pareto_mask", "per_sample_jacobian", "relative_difference", "spread",
           "update_cosines"]
