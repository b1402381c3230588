"""Argument checks shared by the builders: each failure is a BmtkScalingError that names the parameter."""

from __future__ import annotations

import math
from numbers import Integral, Real

from bmtk_scaling.errors import BmtkScalingError


def positive_int(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, Integral) or value <= 0:
        raise BmtkScalingError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


def probability(name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, Real) or not 0.0 <= float(value) <= 1.0:
        raise BmtkScalingError(f"{name} must be a probability in [0, 1], got {value!r}")
    return float(value)


def positive(name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, Real) or not math.isfinite(value) or value <= 0:
        raise BmtkScalingError(f"{name} must be a positive number, got {value!r}")
    return float(value)


def non_negative(name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, Real) or not math.isfinite(value) or value < 0:
        raise BmtkScalingError(f"{name} must be a non-negative number, got {value!r}")
    return float(value)


def finite(name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, Real) or not math.isfinite(value):
        raise BmtkScalingError(f"{name} must be a finite number, got {value!r}")
    return float(value)


def seed(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, Integral) or value < 0:
        raise BmtkScalingError(f"seed must be a non-negative integer, got {value!r}")
    return int(value)
