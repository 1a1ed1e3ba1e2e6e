"""BayesianModel: a network spec + a prior on its free parameters + a likelihood.

>>> import bnn_asym
>>> net = bnn_asym.MLP(2, (16,), 2, symmetry="w_asym")
>>> model = BayesianModel(net, Likelihood("categorical"), Prior("fan_in", scale=1.0))
>>> sorted(model.latent_shapes())[:2]
['fc0.bias', 'fc0.weight']
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..nets.spec import NetSpec, spec_from_dict
from .likelihoods import Likelihood, as_likelihood
from .priors import Prior


@dataclass(frozen=True)
class BayesianModel:
    net: NetSpec
    likelihood: Likelihood = field(default_factory=Likelihood)
    prior: Prior = field(default_factory=Prior)

    def __post_init__(self):
        if not isinstance(self.net, NetSpec):
            raise ValueError(f"net must be a bnn_asym network spec (MLP, CNN, ResNet); got {type(self.net).__name__}")
        object.__setattr__(self, "likelihood", as_likelihood(self.likelihood))
        if not isinstance(self.prior, Prior):
            raise ValueError(f"prior must be a bnn_asym.Prior; got {self.prior!r}")
        n_out = self.n_outputs
        lik = self.likelihood
        if lik.name == "categorical" and n_out < 2:
            raise ValueError(
                "likelihood='categorical' needs a network with >= 2 outputs (one logit per class); "
                "use likelihood='bernoulli' for one output"
            )
        if lik.name != "categorical" and n_out != lik.expected_outputs(None):
            raise ValueError(
                f"likelihood={lik.name!r} needs a network with {lik.expected_outputs(None)} output(s); "
                f"this one has {n_out}"
            )
        self.prior.loc_scale(self.net.layout)  # validates per-layer overrides now

    @property
    def n_outputs(self) -> int:
        return self.net.weight_layers()[-1].d_out

    @property
    def task(self) -> str:
        return self.likelihood.task

    def prior_loc_scale(self) -> dict[str, tuple[float, float]]:
        return self.prior.loc_scale(self.net.layout)

    def latent_shapes(self) -> dict[str, tuple[int, ...]]:
        """Every random variable: the network's free parameters, then likelihood latents (noise_std)."""
        shapes = {p.name: p.shape for p in self.net.layout}
        shapes.update(self.likelihood.latent_sites())
        return shapes

    def numpyro_model(self):
        from .numpyro import make_numpyro_model

        return make_numpyro_model(self)

    def pyro_model(self, **kwargs):
        from .pyro import make_pyro_model

        return make_pyro_model(self, **kwargs)

    def to_dict(self) -> dict:
        return {
            "net": self.net.to_dict(with_constants=True),
            "likelihood": self.likelihood.to_dict(),
            "prior": self.prior.to_dict(),
        }

    @classmethod
    def from_dict(cls, d: dict) -> BayesianModel:
        return cls(spec_from_dict(d["net"]), Likelihood.from_dict(d["likelihood"]), Prior.from_dict(d["prior"]))
