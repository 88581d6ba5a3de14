"""The fused GRU unroll (``--fused-gru``): the same layer as torch.gru to float rounding, gradients
included; the default stays torch.gru; without a compiler it falls back and says so."""
import copy
import os
import subprocess
import sys
import textwrap

import pytest
import torch

from ccoma.algos import fused_gru
from ccoma.algos.fused_gru import _torch_gru, gru_sequence
from ccoma.algos.networks import RNNAgent

needs_cc = pytest.mark.skipif(fused_gru.c_compiler()[1] is None, reason="no C compiler")


def _layer(t, m, i, h, seed):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(t, m, i, generator=g).requires_grad_()
    k = h ** -0.5                                       # torch's own GRU initialisation range
    ws = [(torch.rand(*shape, generator=g) * 2 - 1).mul_(k).requires_grad_()
          for shape in ((3 * h, i), (3 * h, h), (3 * h,), (3 * h,))]
    return x, ws, torch.randn(t, m, h, generator=g)


def _graph(y) -> str:
    """The names of the autograd nodes that made ``y``."""
    names, seen, todo = [], set(), [y.grad_fn]
    while todo:
        fn = todo.pop()
        if fn is not None and fn not in seen:
            seen.add(fn)
            names.append(type(fn).__name__)
            todo += [nxt for nxt, _ in fn.next_functions]
    return " ".join(names)


@needs_cc
@pytest.mark.parametrize("t,m,i,h", [(1, 1, 3, 4), (6, 5, 7, 8), (40, 33, 20, 16), (121, 160, 64, 64)])
def test_fused_layer_matches_torch_gru(t, m, i, h):
    x, ws, dy = _layer(t, m, i, h, seed=t)
    with fused_gru.use_fused(True):
        assert fused_gru.status() == "fused C unroll"
        got = gru_sequence(x, *ws)
    assert "GRUSequence" in _graph(got)
    grads = torch.autograd.grad((got * dy).sum(), [x, *ws])
    ref = _torch_gru(x, *ws)
    ref_grads = torch.autograd.grad((ref * dy).sum(), [x, *ws])
    for name, a, b in zip(("h", "x", "w_ih", "w_hh", "b_ih", "b_hh"), (got, *grads), (ref, *ref_grads)):
        scale = float(b.detach().abs().max())
        # float rounding only: exp/tanh within a few ulps, sums grouped differently
        torch.testing.assert_close(a, b, rtol=0, atol=2e-6 * max(scale, 1.0), msg=name)
    assert not torch.equal(got, ref) or t == 1          # it is another computation, not torch.gru again


@needs_cc
@pytest.mark.parametrize("lengths", [[9, 9, 7, 3, 1], [2, 9, 4, 9, 6], [5, 5, 5, 5, 5], [3, 1, 2, 1, 3],
                                     [9, 9, 9, 9, 9]])
def test_packed_unroll_matches_the_padded_layer_on_every_slot_that_matters(lengths):
    """Episodes of unequal lengths (9 slots): with ``steps`` the fused unroll computes only each
    episode's slots, packed; they and every gradient (the padding's masked out) are torch.gru's over
    the whole padded batch to float rounding, and the padding's outputs are zero. Without the fused
    unroll ``steps`` changes nothing."""
    torch.manual_seed(4)
    agent = RNNAgent(7, 3, 16)
    steps = torch.tensor(lengths)
    x = torch.randn(5, 9, 4, 7)
    keep = (torch.arange(9)[None, :] < steps[:, None])[..., None, None].float()      # [B, T, 1, 1]
    g = torch.randn(5, 9, 4, 3) * keep
    ref = agent.unroll(x)
    ref_grads = torch.autograd.grad((ref * g).sum(), list(agent.parameters()))
    assert torch.equal(agent.unroll(x, steps), ref)                                   # torch.gru: every slot
    with fused_gru.use_fused(True):
        index, rows = fused_gru.episode_packing(steps, 9, 4)
        got = agent.unroll(x, steps)
        hs = agent.trunk(x, steps)
    assert "GRUSequence" in _graph(got)
    if min(lengths) == 9:                              # no padding: the plain fused layer, bit for bit
        with fused_gru.use_fused(True):
            assert torch.equal(got, agent.unroll(x))
    assert rows.tolist() == [4 * int((steps > t).sum()) for t in range(9)] and len(index) == 4 * sum(lengths)
    assert len(set(index.tolist())) == len(index)
    assert torch.equal(hs * (1 - keep), torch.zeros_like(hs))                        # the padding: not run
    assert torch.equal(got * (1 - keep), agent.fc2.bias.detach().expand_as(got) * (1 - keep))
    torch.testing.assert_close(got * keep, ref * keep, rtol=0, atol=1e-6)
    grads = torch.autograd.grad((got * g).sum(), list(agent.parameters()))
    for (name, _), a, b in zip(agent.named_parameters(), grads, ref_grads):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5, msg=name)


@needs_cc
@pytest.mark.parametrize("algo", ["qmix", "vdn", "coma", "mfq"])
def test_fused_updates_skip_the_padding_and_land_where_the_default_does(algo, monkeypatch):
    """Learner updates on a batch of unequal episodes: with the fused unroll the agents run only the
    slots each episode fills (and its bootstrap slot), QMIX's mixer only the filled slots, and three
    updates leave every parameter where the default's, torch.gru and the mixer over the whole padded
    batch, leaves it, to float rounding."""
    from ccoma.algos import mixers, networks, registry

    info = {"n_agents": 3, "n_actions": 4, "obs_shape": 5, "state_shape": 6, "episode_limit": 8}
    b, t = 4, 9
    torch.manual_seed(5)
    batch = {"obs": torch.randn(b, t, 3, 5), "state": torch.randn(b, t, 6),
             "actions": torch.randint(0, 4, (b, t, 3)), "avail": torch.ones(b, t, 3, 4, dtype=torch.bool),
             "reward": torch.randn(b, t), "terminated": torch.zeros(b, t),
             "filled": (torch.arange(t)[None] < torch.tensor([8, 3, 5, 2])[:, None])}
    start = registry.make(algo, info, "cpu", {"batch_size": b})
    packed = []
    real = networks.episode_packing
    monkeypatch.setattr(networks, "episode_packing", lambda *a: packed.append(real(*a)) or packed[-1])
    mixed = {False: [], True: []}                        # the mixer's rows per call, padded / fused
    mix = mixers.QMixer.forward
    after = {}
    for on in (False, True):
        learner = copy.deepcopy(start)
        monkeypatch.setattr(mixers.QMixer, "forward",
                            lambda self, q, s: mixed[on].append(q.shape[:-1]) or mix(self, q, s))
        torch.manual_seed(6)                              # COMA samples its bootstrap actions
        with fused_gru.use_fused(on):
            for _ in range(3):
                learner.train_step(batch, 0)
        after[on] = _modules(learner)
    assert packed and all(len(index) == 3 * (9 + 4 + 6 + 3) for index, _ in packed)   # filled + 1 slots each
    if algo == "qmix":                                   # online and target mixer, 3 updates
        assert mixed == {False: [(b, t - 1)] * 6, True: [(8 + 3 + 5 + 2,)] * 6}
    assert after[True].keys() == after[False].keys()
    for k in after[True]:
        torch.testing.assert_close(after[True][k], after[False][k], rtol=1e-4, atol=1e-5, msg=k)
    before = _modules(start)
    assert not torch.equal(after[True]["agent.rnn.weight_hh"], before["agent.rnn.weight_hh"])


def _modules(learner) -> dict:
    return {f"{m}.{k}": v.clone() for m, sd in learner.state_dict()["modules"].items() for k, v in sd.items()}


@needs_cc
def test_fused_agent_unroll_learns_the_same_gradients_as_the_cell_walk():
    torch.manual_seed(0)
    agent = RNNAgent(7, 3, 16)
    ref = copy.deepcopy(agent)
    x, g = torch.randn(4, 9, 3, 7), torch.randn(4, 9, 3, 3)
    with fused_gru.use_fused(True):
        (agent.unroll(x) * g).sum().backward()
    h, outs = ref.init_hidden(4, 3), []
    for t in range(9):
        out, h = ref(x[:, t], h)
        outs.append(out)
    (torch.stack(outs, 1) * g).sum().backward()
    for (name, p), q in zip(agent.named_parameters(), ref.parameters()):
        torch.testing.assert_close(p.grad, q.grad, rtol=1e-5, atol=1e-5, msg=name)


def test_default_unroll_is_torch_gru_bit_for_bit():
    """Without --fused-gru nothing changes: the unroll is the GRUCell walk's numbers exactly (CPU)."""
    assert fused_gru.status() == "torch.gru (fused unroll off)"
    torch.manual_seed(1)
    agent = RNNAgent(7, 3, 16)
    x = torch.randn(4, 9, 3, 7)
    seq = agent.unroll(x)
    assert seq.grad_fn is not None and "GRUSequence" not in _graph(seq)
    h = agent.init_hidden(4, 3)
    for t in range(9):
        out, h = agent(x[:, t], h)
        assert torch.equal(out, seq[:, t])


def test_use_fused_restores_the_setting():
    with fused_gru.use_fused(True):
        with fused_gru.use_fused(False):
            assert fused_gru.status() == "torch.gru (fused unroll off)"
        assert fused_gru._on()
    assert not fused_gru._on()


_PROBE = textwrap.dedent("""
    import torch
    from ccoma.algos import fused_gru
    fused_gru.set_fused(True)
    x = torch.randn(5, 3, 4)
    w = [torch.randn(12, 4), torch.randn(12, 4), torch.randn(12), torch.randn(12)]
    y = fused_gru.gru_sequence(x, *w)
    print(fused_gru.status())
    print(torch.equal(y, fused_gru._torch_gru(x, *w)))
""")


def _probe(env):
    out = subprocess.run([sys.executable, "-c", _PROBE], env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    return out.stdout.split("\n")[:2]


@needs_cc
def test_built_once_per_cache_then_no_compiler_needed(tmp_path):
    env = dict(os.environ, CCOMA_CACHE_DIR=str(tmp_path))
    assert _probe(env) == ["fused C unroll", "False"]
    built = list(tmp_path.glob("gru-*.so"))
    assert len(built) == 1
    stamp = built[0].stat().st_mtime_ns
    # a second process loads the cached library, even where no compiler is found
    assert _probe(dict(env, CC=str(tmp_path / "no-such-cc"))) == ["fused C unroll", "False"]
    assert built[0].stat().st_mtime_ns == stamp and list(tmp_path.glob("*")) == built


@needs_cc
def test_first_use_without_gradients_still_loads_it(tmp_path):
    """The self-check needs gradients: a process whose first unroll runs under no_grad (a target
    network's, an evaluation's) must still get the fused loop."""
    probe = _PROBE.replace("y = fused_gru.gru_sequence(x, *w)",
                           "with torch.no_grad():\n    y = fused_gru.gru_sequence(x, *w)")
    out = subprocess.run([sys.executable, "-c", probe], env=dict(os.environ, CCOMA_CACHE_DIR=str(tmp_path)),
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split("\n")[:2] == ["fused C unroll", "False"]


def test_without_a_compiler_it_runs_torch_gru_and_says_why(tmp_path):
    status, same = _probe(dict(os.environ, CCOMA_CACHE_DIR=str(tmp_path), CC=str(tmp_path / "no-such-cc")))
    assert status.startswith("torch.gru (no C compiler") and "no-such-cc" in status
    assert same == "True"


@needs_cc
def test_fused_forward_without_gradients_keeps_no_graph():
    x, ws, _ = _layer(7, 6, 5, 4, seed=3)
    with fused_gru.use_fused(True):
        with torch.no_grad():
            plain = gru_sequence(x, *ws)
        tracked = gru_sequence(x, *ws)
    assert plain.grad_fn is None and tracked.grad_fn is not None
    assert torch.equal(plain, tracked)                 # the same forward pass, gates kept or not


@needs_cc
def test_qmix_elu_with_the_fused_unroll_is_elu_to_rounding_and_plain_elu_otherwise():
    """QMIX's hidden ELU: with the fused unroll its expm1 runs in float64 (ATen's float32 expm1 is slow
    on CPU), rounded once, so its values are ELU's to within an ulp; its gradient is ATen's formula
    (g * exp(x) below 0) to float rounding. Without the fused unroll it is F.elu."""
    import torch.nn.functional as F

    from ccoma.algos.mixers import elu
    g = torch.Generator().manual_seed(0)
    x = torch.cat([torch.randn(4000, generator=g) * 3, torch.tensor([0.0, -0.0, -1e-30, 1e-30, -90.0, 50.0])])
    x.requires_grad_()
    dy = torch.randn(x.shape, generator=g)
    exact = F.elu(x.detach().double())
    with fused_gru.use_fused(True):
        y = elu(x)
    assert "_ELUBackward" in _graph(y)
    (grad,) = torch.autograd.grad(y, x, dy)
    ulp = torch.finfo(torch.float32).eps
    assert torch.all((y.double() - exact).abs() <= ulp * exact.abs() + 1e-38)    # within an ulp (rounded once)
    exact_grad = dy.double() * torch.exp(x.detach().double().clamp(max=0))      # ATen's formula, g * exp(x)
    assert torch.allclose(grad.double(), exact_grad, rtol=4 * ulp, atol=1e-37)
    assert torch.equal(y[x > 0], x[x > 0]) and bool((y[x <= 0] <= 0).all())
    with fused_gru.use_fused(False):
        plain = elu(x)
    assert torch.equal(plain, F.elu(x)) and "EluBackward" in _graph(plain)
