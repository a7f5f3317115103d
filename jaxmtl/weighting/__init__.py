"""Loss weightings: one file per method."""
from jaxmtl.weighting.linear import linear

__all__ = ["linear"]
