"""Point-estimate training: seeds, fixed entries, objectives, schedules."""

import numpy as np
import pytest
import torch

import bnn_asym
from bnn_asym.training import TrainConfig, _lr_factor, epochs_for_steps, train


def test_seeds_for_init_and_data_order_are_separate(tiny_task):
    spec, X, y = tiny_task
    config = TrainConfig(epochs=3, batch_size=16, weight_decay=0.5)
    r1 = train(spec, X, y, config=config, init_seed=0, data_seed=0)
    r2 = train(spec, X, y, config=config, init_seed=1, data_seed=0)
    r3 = train(spec, X, y, config=config, init_seed=0, data_seed=5)
    assert not np.array_equal(r1.init["fc0.weight"], r2.init["fc0.weight"])
    np.testing.assert_array_equal(r1.init["fc0.weight"], r3.init["fc0.weight"])
    assert not np.array_equal(r1.params["fc0.weight"], r3.params["fc0.weight"])  # data order differs
    assert set(r1.params) == {p.name for p in spec.layout}  # fixed entries are never parameters


def test_weight_decay_never_touches_fixed_entries():
    spec = bnn_asym.MLP(5, (6,), 2, symmetry="w_asym", seed=0)
    module = spec.torch_module()
    before = {k: v.clone() for k, v in module.constants().items()}
    opt = torch.optim.AdamW(module.parameters(), lr=0.1, weight_decay=1.0)
    for _ in range(5):
        opt.zero_grad()
        module(torch.randn(4, 5)).sum().backward()
        opt.step()
    for k, v in module.constants().items():
        assert torch.equal(v, before[k])


def test_training_reduces_the_loss_and_rejects_bad_settings(tiny_task):
    spec, X, y = tiny_task
    result = train(spec, X, y, config=TrainConfig(epochs=30, batch_size=16, lr=1e-2))
    assert result.history[-1]["loss"] < 0.5 * result.history[0]["loss"]
    with pytest.raises(ValueError, match="lr"):
        TrainConfig(lr=-1.0)
    with pytest.raises(ValueError, match="schedule"):
        TrainConfig(schedule="step")
    poisoned = X.copy()
    poisoned[:, 0] = np.nan  # every batch's loss is NaN: training must stop with a hint, not carry on
    with pytest.raises(FloatingPointError, match="epoch 0, step 0; try a smaller lr"):
        train(spec, poisoned, y, config=TrainConfig(epochs=1))


def test_cosine_schedule_and_step_counting():
    cfg = TrainConfig(epochs=10, schedule="cosine")
    assert _lr_factor(0, 100, cfg) == pytest.approx(1.0)
    assert _lr_factor(50, 100, cfg) == pytest.approx(0.5)
    assert _lr_factor(100, 100, cfg) == pytest.approx(0.0, abs=1e-12)
    assert _lr_factor(70, 100, TrainConfig(schedule="constant")) == 1.0
    assert epochs_for_steps(n=1000, batch_size=100, steps=25) == 3
