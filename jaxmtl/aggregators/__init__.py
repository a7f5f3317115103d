"""Gradient aggregators: one file per method, each exposing its Gramian weighting."""
from jaxmtl.aggregators.mgda import mgda, mgda_weights
from jaxmtl.aggregators.pcgrad import pcgrad, pcgrad_weights
from jaxmtl.aggregators.upgrad import upgrad, upgrad_weights

__all__ = ["mgda", "mgda_weights", "pcgrad", "pcgrad_weights", "upgrad", "upgrad_weights"]
