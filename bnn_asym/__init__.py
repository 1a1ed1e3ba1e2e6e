"""bnn_asym: Bayesian deep learning with asymmetric (symmetry-free) neural networks.

Networks (``MLP``, ``CNN``, ``ResNet``; standard, W-Asym or sigma-Asym) from one spec in torch and
JAX; ``fit`` turns any of them into a BNN with any engine and returns a ``Posterior``.

Importing bnn_asym loads neither JAX nor torch: they are imported where first needed, so
``bnn-asym --help`` answers at once.
"""

from .fit import ENGINES, fit
from .inference.catalog import engine_options
from .jax_setup import configure_compilation_cache, release_compiled_programs
from .models import BayesianModel, Likelihood, Prior
from .nets import CNN, MLP, SYMMETRIES, ResNet, spec_from_dict, spec_from_json
from .posterior import Posterior, load
from .prior_selection import PriorSelection, select_prior_scale
from .warn import ConvergenceWarning

__version__ = "0.2.0"


def set_cpu_devices(n: int) -> None:
    """Expose ``n`` CPU devices to JAX so chains can run in parallel; call before JAX starts computing."""
    import numpyro

    numpyro.set_host_device_count(n)


__all__ = [
    "CNN",
    "ENGINES",
    "MLP",
    "SYMMETRIES",
    "BayesianModel",
    "ConvergenceWarning",
    "Likelihood",
    "Posterior",
    "Prior",
    "PriorSelection",
    "ResNet",
    "configure_compilation_cache",
    "engine_options",
    "fit",
    "load",
    "release_compiled_programs",
    "select_prior_scale",
    "set_cpu_devices",
    "spec_from_dict",
    "spec_from_json",
]
