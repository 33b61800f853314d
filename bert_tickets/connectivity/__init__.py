"""Linear mode connectivity (Frankle et al. 2020): weights interpolated on the straight line
between two trained networks, evaluated along it, and the error barrier of the path; and the
sharpness of a trained subnetwork (Hessian estimators, McDermott et al. 2023)."""

from .path import PathPoint, chord_barrier, error_barrier, evaluate_linear_path, interpolate_state
from .sharpness import hessian_vector_product, hutchinson_trace, top_eigenvalue

__all__ = [
    "PathPoint",
    "chord_barrier",
    "error_barrier",
    "evaluate_linear_path",
    "hessian_vector_product",
    "hutchinson_trace",
    "interpolate_state",
    "top_eigenvalue",
]
