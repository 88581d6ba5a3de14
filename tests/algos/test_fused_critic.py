"""COMA's critic walk in C (opt-in with ``--fused-gru``): the by-hand walk's steps to float rounding,
in runs that end where the target critic is copied; the default stays bit for bit autograd's."""
import pytest
import torch

from ccoma.algos import fused_critic, fused_gru, registry
from test_algos_fast_paths import _coma_batch, _flat, coma_stage_updates  # tests/algos is on sys.path (pytest's prepend import mode)

needs_cc = pytest.mark.skipif(fused_gru.c_compiler()[1] is None, reason="no C compiler")

INFO = {"n_agents": 3, "n_actions": 4, "obs_shape": 5, "state_shape": 6, "episode_limit": 6}


@needs_cc
@pytest.mark.parametrize("stage", ["train", "continual", "anchored"])
def test_fused_walk_lands_where_the_step_by_step_walk_does(stage, monkeypatch, critic_walks):
    """Four updates of 6 critic steps (target copied every 4 steps, clipping active), with the fused
    GRU on in both runs so that only the critic's walk differs: the C walk runs the same steps, ending
    its runs at the target copies, and leaves weights, optimiser state, target critic, the update's info
    and the gradients where the by-hand walk leaves them, to float rounding. With an anchor on the
    critic every step goes through autograd and the C walk never runs."""
    torch.manual_seed(4)
    batches = [_coma_batch() for _ in range(4)]
    with fused_gru.use_fused(True):
        assert fused_critic.status() == "fused C walk"
    runs = critic_walks

    def run(fused_walk):
        torch.manual_seed(5)
        learner = registry.make("coma", INFO, "cpu", {"batch_size": 4, "target_update_interval": 4,
                                                       "grad_norm_clip": 0.5})
        with fused_gru.use_fused(True), monkeypatch.context() as m:
            if not fused_walk:
                m.setattr(fused_critic, "runs_fused", lambda x: False)
            infos = coma_stage_updates(learner, batches[0], batches[1:], stage)
        grads = {k: p.grad for k, p in learner.critic.named_parameters()}
        return learner, infos, dict(_flat(learner.state_dict())), grads

    learner, infos, state, grads = run(True)
    fused_runs = list(runs)
    ref, ref_infos, ref_state, ref_grads = run(False)
    assert runs == fused_runs                       # the reference ran no C walk
    # the first update has no optimiser state yet (step by step); then 3 x 6 steps in runs cut at every
    # 4th critic step: 6 done -> 2 | 4 | 4 | 2 | 2 | 4
    assert fused_runs == ([] if stage == "anchored" else [2, 4, 4, 2, 2, 4])
    assert (learner.critic_steps, learner.last_target_step) == (ref.critic_steps, ref.last_target_step) == (24, 24)
    assert state.keys() == ref_state.keys()
    for k in state:
        if k.endswith("step"):
            assert torch.equal(state[k], ref_state[k]), k       # RMSprop's step counts, exactly
        else:
            torch.testing.assert_close(state[k], ref_state[k], rtol=1e-4, atol=1e-5, msg=k)
    differ = [k for k in state if "critic" in k and state[k].is_floating_point() and not torch.equal(state[k], ref_state[k])]
    assert (differ == []) == (stage == "anchored")              # the C walk rounds differently
    for a, b in zip(infos, ref_infos):
        assert a.keys() == b.keys()
        for k in a:
            assert a[k] == pytest.approx(b[k], rel=1e-4, abs=1e-5), k
    for k, g in grads.items():
        assert (g is None) == (ref_grads[k] is None), k
        if g is not None:
            torch.testing.assert_close(g, ref_grads[k], rtol=1e-4, atol=1e-5, msg=k)


@needs_cc
def test_fused_walk_refuses_an_action_outside_the_critics_outputs():
    from ccoma.algos.coma import _CriticByHand

    torch.manual_seed(0)
    layers = [torch.nn.Linear(5, 3)]
    opt = torch.optim.RMSprop(layers[0].parameters(), lr=0.01, foreach=True)
    for p in layers[0].parameters():
        p.grad = torch.zeros_like(p)
    opt.step()
    with fused_gru.use_fused(True):
        assert fused_critic.status() == "fused C walk"
        hand = _CriticByHand(layers, opt, 1.0)
        before = hand.flat_p.clone()
        taken = torch.tensor([[0, 3]])                       # 3 actions: index 3 is out of range
        with pytest.raises(ValueError, match="action index"):
            fused_critic.walk(hand, [0], torch.randn(1, 2, 5), taken, torch.zeros(1, 2), torch.ones(1, 2),
                              torch.tensor([2.0]), torch.zeros(1, 2, 3), torch.zeros(1), torch.zeros(1))
        assert torch.equal(hand.flat_p, before) and hand.pending == 0


def test_default_walk_is_step_by_step():
    assert fused_critic.status() == "step by step (fused unroll off)"
    assert not fused_critic.runs_fused(torch.zeros(2, 3))


_PROBE = """
import torch
from ccoma.algos import fused_critic, fused_gru
torch.manual_seed(3)
a = torch.rand(4)
torch.manual_seed(3)
fused_gru.set_fused(True)
print(fused_critic.status())    # the first use in this process: built or found, then self-checked
print(torch.equal(a, torch.rand(4)))
"""


@needs_cc
def test_first_load_leaves_the_random_stream_alone():
    """The self-check at first use draws its own numbers: a job seeded before its first COMA update
    draws what it would have drawn (the first update samples its bootstrap actions after the load)."""
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-c", _PROBE], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split("\n")[:2] == ["fused C walk", "True"], out.stdout
