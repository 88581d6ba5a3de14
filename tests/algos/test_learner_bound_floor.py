"""``benchmarks/learner_bound.py``'s measured floor runs the value learners' own products: the same ATen
matrix products (counted by shape and FLOP) and the same fused GRU calls as one update, so the floor it
times is that update's and cannot drift from the learner (a product left out, or one the learner no
longer computes, fails here). Nothing is timed."""
import importlib.util
from pathlib import Path

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from ccoma.algos import fused_gru, registry
from ccoma.data.buffer import buffer_for
from ccoma.data.rollout import Rollout
from ccoma.sim.env import SimEnv

needs_cc = pytest.mark.skipif(fused_gru.c_compiler()[1] is None, reason="no C compiler")


def _bound_module():
    path = Path(__file__).resolve().parents[2] / "benchmarks" / "learner_bound.py"
    spec = importlib.util.spec_from_file_location("learner_bound", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _learner_and_batch(algo: str):
    torch.manual_seed(0)
    env = SimEnv.from_map("3m", n_envs=4, seed=0)
    learner = registry.make(algo, env.get_env_info(), "cpu")
    buf = buffer_for(learner, env.n_agents, env.episode_limit, 100, 32, "cpu")
    Rollout(env, learner, buf).run(800, learn=False)
    return learner, buf.sample(8)


def _products_and_gru_calls(fn, monkeypatch):
    """ATen FLOPs per product operator, and the fused GRU's C calls (forwards, backwards), of ``fn()``."""
    calls = {"forward": 0, "backward": 0}
    lib = fused_gru._state["lib"]

    class Counting:
        def __getattr__(self, name):
            real = getattr(lib, name)
            key = {"ccoma_gru_forward": "forward", "ccoma_gru_backward": "backward"}.get(name)

            def call(*args):
                calls[key] += 1
                return real(*args)
            return call if key else real

    monkeypatch.setitem(fused_gru._state, "lib", Counting())
    with FlopCounterMode(display=False) as counter:
        fn()
    monkeypatch.setitem(fused_gru._state, "lib", lib)
    return {str(op): n for op, n in counter.get_flop_counts()["Global"].items()}, calls


@needs_cc
@pytest.mark.parametrize("algo", ["qmix", "vdn", "iql"])
def test_the_floor_computes_the_updates_own_products(algo, monkeypatch):
    bound = _bound_module()
    with fused_gru.use_fused(True):
        assert fused_gru._load() is not None, fused_gru.status()
        learner, batch = _learner_and_batch(algo)
        floor = bound.products_floor(learner, batch)
        assert floor is not None
        update_products, update_gru = _products_and_gru_calls(lambda: learner.train_step(batch, 0), monkeypatch)
        floor_products, floor_gru = _products_and_gru_calls(floor, monkeypatch)
    assert update_products and floor_products == update_products
    assert update_gru == floor_gru == {"forward": 2, "backward": 1}


def test_no_floor_without_the_fused_unroll_or_for_coma():
    bound = _bound_module()
    with fused_gru.use_fused(False):
        learner, batch = _learner_and_batch("qmix")
        assert bound.products_floor(learner, batch) is None
    with fused_gru.use_fused(True):
        learner, batch = _learner_and_batch("coma")
        assert bound.products_floor(learner, batch) is None
