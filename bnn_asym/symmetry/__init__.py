"""Parameter symmetries: permutations, rescalings, alignment and interpolation between networks."""

from . import permutations
from .permutations import *  # noqa: F403 -- the names in permutations.__all__

__all__ = permutations.__all__
