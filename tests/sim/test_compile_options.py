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
