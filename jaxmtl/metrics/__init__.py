"""Task losses and metrics of the papers' benchmarks; every metric declares whether higher is better."""
from jaxmtl._extras import require_extra

require_extra(__name__)

from jaxmtl.metrics.base import Metric, masked_mean, valid_mask
from jaxmtl.metrics.classification import accuracy, binary_accuracy, binary_cross_entropy, cross_entropy
from jaxmtl.metrics.depth import abs_error, l1_depth_loss, rel_error
from jaxmtl.metrics.instance import l1_offset_loss, offset_error
from jaxmtl.metrics.normals import THRESHOLDS, mean_angle, median_angle, normal_loss, within
from jaxmtl.metrics.regression import mae, reconstruction_error, squared_error
from jaxmtl.metrics.segmentation import (IGNORE_INDEX, confusion_matrix, mean_iou, pixel_accuracy,
                                         pixel_cross_entropy)

__all__ = ["IGNORE_INDEX", "Metric", "THRESHOLDS", "abs_error", "accuracy", "binary_accuracy",
           "binary_cross_entropy", "confusion_matrix", "cross_entropy", "l1_depth_loss", "l1_offset_loss", "mae",
           "masked_mean", "mean_angle", "mean_iou", "median_angle", "normal_loss", "offset_error", "pixel_accuracy",
           "pixel_cross_entropy", "reconstruction_error", "rel_error", "squared_error", "valid_mask", "within"]
