"""The engine that docs/adding-an-engine.md writes (example_engine.py), registered the way the page says: it
runs through fit() like every built-in engine and samples the exact conjugate posterior."""

import numpy as np
import pytest
from harness import conjugate_problem, exact_posterior, flat_draws

import bnn_asym
from bnn_asym.inference import ENGINES


@pytest.fixture
def ula(monkeypatch):
    monkeypatch.setitem(ENGINES, "ula", "example_engine:ULA")  # the one registry line of the page


@pytest.mark.parametrize("symmetry", ["standard", "w_asym"])
def test_the_documented_engine_samples_the_conjugate_posterior(ula, symmetry, seed_shift):
    """ULA with step 1e-3 on 40 rows: its discretisation inflates the variance by about 4% and 2 x 2,000 steps
    give a few hundred effective draws. Measured over seeds 0-3 (both networks): |mean error| <= 0.20 sd, std
    ratio 0.97-1.10; asserted within 0.5 sd (2.5x the worst) and 0.7-1.4 (the SG-MCMC bands of harness.py are
    0.5 sd and 0.5-2)."""
    model, X, y = conjugate_problem(symmetry, seed=seed_shift)
    mean, cov = exact_posterior(model, X, y)
    sd = np.sqrt(np.diag(cov))
    post = bnn_asym.fit(
        model, X, y, engine="ula", seed=1 + seed_shift, progress=False, num_warmup=500, num_samples=2000, step_size=1e-3
    )
    draws = flat_draws(post)
    np.testing.assert_array_less(np.abs(draws.mean(0) - mean), 0.5 * sd)
    ratio = draws.std(0) / sd
    assert np.all((ratio > 0.7) & (ratio < 1.4)), ratio
    assert post.sample_stats["n_steps"].shape == (2, 2000) and post.run_info.grad_evals == 2 * 2500


def test_the_documented_engine_has_checkpoints_budgets_and_option_errors(ula):
    model, X, y = conjugate_problem("standard")
    options = dict(num_warmup=20, num_samples=40, step_size=1e-3)
    full = bnn_asym.fit(model, X, y, engine="ula", seed=3, progress=False, checkpoints=[50], **options)
    stopped = bnn_asym.fit(model, X, y, engine="ula", seed=3, progress=False, budget={"steps": 50}, **options)
    (checkpoint,) = full.checkpoints
    for name in full.draws:
        np.testing.assert_array_equal(checkpoint.posterior.draws[name], stopped.draws[name])
    with pytest.raises(ValueError, match="ula option step_size=-1.0 is not valid; accepted: a finite number > 0"):
        bnn_asym.fit(model, X, y, engine="ula", step_size=-1.0)
    with pytest.raises(FloatingPointError, match=r"ula: a parameter became NaN or inf at step \d+.*smaller step_size"):
        bnn_asym.fit(model, X, y, engine="ula", progress=False, num_warmup=5, num_samples=50, step_size=10.0)
