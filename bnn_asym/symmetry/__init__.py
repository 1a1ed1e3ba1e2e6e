"""Parameter symmetries: permutations, rescalings, alignment and interpolation between networks."""

from .permutations import (
    PermutationSpec,
    permutation_spec,
    permute,
    permute_free,
    random_permutations,
    rescale_free,
    to_effective,
    to_free,
)

__all__ = ["PermutationSpec", "permutation_spec", "permute", "permute_free", "random_permutations",
           "rescale_free", "to_effective", "to_free"]
