"""Loss weightings: one file per method; weights computed from the task losses."""
from jaxmtl.weighting.auto_lambda import AutoLambdaState, auto_lambda
from jaxmtl.weighting.dwa import DWAState, dwa
from jaxmtl.weighting.famo import FAMOState, famo
from jaxmtl.weighting.geometric_mean import geometric_mean
from jaxmtl.weighting.gradnorm import GradNormState, gradnorm
from jaxmtl.weighting.imtl_l import IMTLLState, imtl_l
from jaxmtl.weighting.linear import linear
from jaxmtl.weighting.rlw import RLWState, rlw
from jaxmtl.weighting.scale_invariant import scale_invariant
from jaxmtl.weighting.stch import stch
from jaxmtl.weighting.uncertainty import UncertaintyState, uncertainty
from jaxmtl.weighting.uw_optimal import uw_optimal
from jaxmtl.weighting.uw_so import uw_so

__all__ = ["AutoLambdaState", "DWAState", "FAMOState", "GradNormState", "IMTLLState", "RLWState",
           "UncertaintyState", "auto_lambda", "dwa", "famo", "geometric_mean", "gradnorm", "imtl_l", "linear",
           "rlw", "scale_invariant", "stch", "uncertainty", "uw_optimal", "uw_so"]
