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


@needs_cc
@pytest.mark.parametrize("t,m,i,h", [(1, 1, 3, 4), (6, 5, 7, 8), (40, 33, 20, 16), (121, 160, 64, 64)])
def test_fused_layer_matches_torch_gru(t, m, i, h):
    x, ws, dy = _layer(t, m, i, h, seed=t)
    with fused_gru.use_fused(True):
        assert fused_gru.status() == "fused C unroll"
        got = gru_sequence(x, *ws)
    assert got.grad_fn is not None and "GRUSequence" in type(got.grad_fn).__name__
    grads = torch.autograd.grad((got * dy).sum(), [x, *ws])
    ref = _torch_gru(x, *ws)
    ref_grads = torch.autograd.grad((ref * dy).sum(), [x, *ws])
    for name, a, b in zip(("h", "x", "w_ih", "w_hh", "b_ih", "b_hh"), (got, *grads), (ref, *ref_grads)):
        scale = float(b.detach().abs().max())
        # float rounding only: exp/tanh within a few ulps, sums grouped differently
        torch.testing.assert_close(a, b, rtol=0, atol=2e-6 * max(scale, 1.0), msg=name)
    assert not torch.equal(got, ref) or t == 1          # it is another computation, not torch.gru again


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
    assert fused_gru.status() == "torch.gru (the default)"
    torch.manual_seed(1)
    agent = RNNAgent(7, 3, 16)
    x = torch.randn(4, 9, 3, 7)
    seq = agent.unroll(x)
    assert seq.grad_fn is not None and "GRUSequence" not in type(seq.grad_fn).__name__
    h = agent.init_hidden(4, 3)
    for t in range(9):
        out, h = agent(x[:, t], h)
        assert torch.equal(out, seq[:, t])


def test_use_fused_restores_the_setting():
    with fused_gru.use_fused(True):
        with fused_gru.use_fused(False):
            assert fused_gru.status() == "torch.gru (the default)"
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
