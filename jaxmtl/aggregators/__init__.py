"""Gradient aggregators: one file per method; Gramian-based ones expose their weighting."""
from jaxmtl.aggregators.aligned_mtl import aligned_mtl, aligned_mtl_weights
from jaxmtl.aggregators.cagrad import cagrad, cagrad_weights
from jaxmtl.aggregators.cdtt import CDTTState, cdtt, cdtt_weights
from jaxmtl.aggregators.con_fig import con_fig, con_fig_weights
from jaxmtl.aggregators.db_mtl import DBMTLState, db_mtl
from jaxmtl.aggregators.dualproj import dualproj, dualproj_weights
from jaxmtl.aggregators.edm import edm, edm_weights
from jaxmtl.aggregators.excess_mtl import ExcessMTLState, excess_mtl
from jaxmtl.aggregators.fairgrad import fairgrad, fairgrad_weights
from jaxmtl.aggregators.graddrop import GradDropState, graddrop
from jaxmtl.aggregators.gradvac import GradVacState, gradvac, gradvac_weights
from jaxmtl.aggregators.imtl import IMTLState, imtl, imtl_weights
from jaxmtl.aggregators.imtl_g import imtl_g, imtl_g_weights
from jaxmtl.aggregators.mgda import mgda, mgda_weights
from jaxmtl.aggregators.moco import MoCoState, moco
from jaxmtl.aggregators.modo import modo
from jaxmtl.aggregators.nash_mtl import NashMTLState, nash_mtl, nash_mtl_weights
from jaxmtl.aggregators.pcgrad import PCGradState, pcgrad, pcgrad_weights
from jaxmtl.aggregators.rotograd import RotoGradState, rotograd, rotograd_weights
from jaxmtl.aggregators.sdmgrad import sdmgrad
from jaxmtl.aggregators.upgrad import upgrad, upgrad_weights

__all__ = [
    "CDTTState", "DBMTLState", "ExcessMTLState", "GradDropState", "GradVacState", "IMTLState", "MoCoState",
    "NashMTLState", "PCGradState", "RotoGradState", "aligned_mtl", "aligned_mtl_weights", "cagrad",
    "cagrad_weights", "cdtt", "cdtt_weights", "con_fig", "con_fig_weights", "db_mtl", "dualproj",
    "dualproj_weights", "edm", "edm_weights", "excess_mtl", "fairgrad", "fairgrad_weights", "graddrop",
    "gradvac", "gradvac_weights", "imtl", "imtl_g", "imtl_g_weights", "imtl_weights", "mgda",
    "mgda_weights", "moco", "modo", "nash_mtl", "nash_mtl_weights", "pcgrad", "pcgrad_weights",
    "rotograd", "rotograd_weights", "sdmgrad", "upgrad", "upgrad_weights",
]
