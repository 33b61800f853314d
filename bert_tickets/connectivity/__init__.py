"""Linear mode connectivity (Frankle et al. 2020): weights interpolated on the straight line
between two trained networks, evaluated along it, and the error barrier of the path."""

from .path import PathPoint, chord_barrier, error_barrier, evaluate_linear_path, interpolate_state

__all__ = ["PathPoint", "chord_barrier", "error_barrier", "evaluate_linear_path", "interpolate_state"]
