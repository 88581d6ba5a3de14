"""The compiled step's inductor options mean what they say: a vector ``cpp.simdlen`` gets vector code
wherever the CPU has that instruction set, also where inductor's own check of the CPU fails (it loads a
test library in a child Python that dies where the ``enum34`` backport, pulled in by pysc2-evolved in the
``dev`` and ``sc2`` extras, shadows the standard library's ``enum``)."""
import platform

import pytest
import torch

from ccoma.sim import env as sim_env

X86 = platform.machine() in ("x86_64", "AMD64")


@pytest.fixture(autouse=True)
def inductor_as_it_was():
    """``trust_cpu_flags`` changes inductor's configuration for the whole process; put it back, so later
    compiles in this test process keep the configuration (and the compile-cache keys) they had."""
    from torch._inductor import config

    before = config.cpp.vec_isa_ok
    yield
    if config.cpp.vec_isa_ok is not before:
        config.cpp.vec_isa_ok = before
        sim_env.forget_vec_isa_verdicts()


def test_the_options_follow_the_detected_instruction_set():
    for cap in ("AVX512", "AVX2", "DEFAULT"):
        opts = sim_env.compile_options(cap)
        assert opts["cpp_wrapper"] is True
        assert opts["cpp.simdlen"] == sim_env.SIMDLEN[cap]
    assert sim_env.compile_options("SOMETHING_NEW")["cpp.simdlen"] == sim_env.SIMDLEN["DEFAULT"]
    assert sim_env.compile_options() == sim_env.compile_options(torch.backends.cpu.get_cpu_capability())


def test_a_width_no_instruction_set_has_gives_scalar_loops():
    assert sim_env.vector_isa({"cpp.simdlen": 8}) == ""
    assert not sim_env.wants_vectors({"cpp.simdlen": 8})
    assert sim_env.wants_vectors({"cpp.simdlen": 256}) and sim_env.wants_vectors({})
    assert sim_env.compile_options(simdlen=8)["cpp.vec_isa_ok"] is False
    assert "cpp.vec_isa_ok" not in sim_env.compile_options(simdlen=512)
    assert "cpp.vec_isa_ok" not in sim_env.compile_options(simdlen=None)   # inductor's own choice


@pytest.mark.skipif(not X86, reason="x86 vector instruction sets")
def test_scalar_options_skip_inductors_cpu_probe_and_leave_no_verdict(monkeypatch):
    """Scalar loops use no vector instruction set, so the compile need not build and load inductor's test
    libraries (1-5 s per process); and the empty list of usable sets it makes then is not kept."""
    from torch._inductor import config, cpu_vec_isa

    probed = []
    monkeypatch.setattr(cpu_vec_isa.VecISA, "check_build", lambda self, code: probed.append(str(self)) or True)
    monkeypatch.setattr(config.cpp, "vec_isa_ok", None)   # inductor's default: probe
    sim_env.forget_vec_isa_verdicts()
    assert sim_env.vector_isa(sim_env.compile_options(simdlen=8)) == ""
    assert probed == []
    # the list made under the options is gone: without them inductor checks the CPU again (and would
    # find vector sets on any x86 CPU with AVX2)
    with config.patch({"cpp.simdlen": None}):
        found = cpu_vec_isa.pick_vec_isa()
    if "avx2" in cpu_vec_isa.x86_isa_checker():
        assert probed and found
    sim_env.forget_vec_isa_verdicts()


@pytest.mark.skipif(not X86, reason="x86 vector instruction sets")
@pytest.mark.parametrize("width,isa", [(256, "avx2"), (512, "avx512")])
def test_a_vector_width_gives_vector_code_where_the_cpu_has_it(width, isa):
    from torch._inductor.cpu_vec_isa import x86_isa_checker

    if isa not in x86_isa_checker():
        pytest.skip(f"this CPU has no {isa}")
    # "avx512", or "avx512 avx512_vnni" where inductor's own VNNI check passes (its verdict is kept on disk)
    assert sim_env.vector_isa({"cpp.simdlen": width}).split()[0] == isa


def _from_arange(node, seen=0) -> bool:
    """Whether an FX node's value is an ``arange`` (possibly viewed, expanded or indexed)."""
    views = {"as_tensor", "unsqueeze", "view", "reshape", "expand", "flatten", "getitem", "to", "long", "contiguous"}
    if node.op != "call_function" and node.op != "call_method" or seen > 8:
        return False
    name = getattr(node.target, "__name__", str(node.target))
    if name == "arange":
        return True
    if name in views:
        return bool(node.args) and hasattr(node.args[0], "op") and _from_arange(node.args[0], seen + 1)
    return False


def test_the_compiled_step_adds_no_64_bit_constant_to_an_arange():
    """Inside a compiled graph an ``arange`` becomes the kernel's index variable, and inductor writes
    ``<constant> + x0`` with a 32-bit index: Triton then refuses a constant beyond int32 (seen on CUDA
    with torch 2.11: the whole compiled simulator failed to build). The step's random keys add such a
    constant (``rng.hash_keys``), so they must come from stored tensors, not from an ``arange`` made
    while tracing. Checked on the traced graph, so it runs without a GPU."""
    import operator

    import torch

    from ccoma.sim.env import SimEnv

    graphs = []

    def capture(gm, example_inputs):
        graphs.append(gm.graph)
        return gm.forward

    env = SimEnv.from_map("2s3z", n_envs=2, seed=0)   # cooldown jitter on: the keyed hash is in the step
    env.reset()
    step = torch.compile(SimEnv._advance, backend=capture, dynamic=False, fullgraph=False)
    step(env, torch.zeros(2, env.n_agents, dtype=torch.long))
    assert graphs, "nothing was traced"
    adds = [n for g in graphs for n in g.nodes
            if n.target in (operator.add, torch.add, operator.iadd) or getattr(n.target, "__name__", "") in ("add", "add_")]
    big = [n for n in adds if any(isinstance(a, int) and abs(a) >= 2**31 for a in n.args)]
    assert big, "the keyed hash's 64-bit constant is not in the traced step any more: this test checks nothing"
    bad = [str(n) for n in big if any(hasattr(a, "op") and _from_arange(a) for a in n.args)]
    assert not bad, f"a 64-bit constant is added to an arange made while tracing: {bad}"
