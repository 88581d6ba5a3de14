"""The episode buffer: scheme-declared, padded with a filled mask, a ring, trimmed samples."""
import pytest
import torch

from ccoma.data.buffer import EpisodeBuffer, Field, allocate, standard_scheme
from ccoma.errors import CcomaError

N, O, S, A, LIMIT = 2, 3, 4, 5, 6


def episodes(lengths, start=0.0):
    """k padded episodes; obs at slot t of episode i is (start + i) * 100 + t (0 after the final slot)."""
    scheme = standard_scheme(O, S, A)
    eps = allocate(scheme, len(lengths), LIMIT + 1, N, "cpu")
    for i, n in enumerate(lengths):
        for t in range(n + 1):  # real steps plus the final slot
            eps["obs"][i, t] = (start + i) * 100 + t
            eps["avail"][i, t] = True
        eps["filled"][i, :n] = True
        eps["reward"][i, :n] = 1.0
        eps["actions"][i, :n] = t % A
        eps["terminated"][i, n - 1] = True
    return eps


def test_insert_and_sample_trims_to_longest():
    buf = EpisodeBuffer(standard_scheme(O, S, A), N, LIMIT, capacity=10)
    buf.insert(episodes([2, 3, 1]))
    assert len(buf) == 3 and buf.can_sample(3) and not buf.can_sample(4)
    batch = buf.sample(3)
    assert batch["obs"].shape == (3, 4, N, O)          # longest filled is 3 -> 3 + 1 slots
    assert batch["avail"].dtype == torch.bool and batch["actions"].dtype == torch.int64
    lengths = sorted(batch["filled"].sum(1).tolist())
    assert lengths == [1, 2, 3]
    for i in range(3):                                  # padding after the final slot is zero
        n = int(batch["filled"][i].sum())
        assert torch.all(batch["obs"][i, n] > 0)         # final observation kept
        assert torch.all(batch["obs"][i, n + 1:] == 0)
        assert torch.all(batch["reward"][i, n:] == 0)


def test_ring_overwrites_oldest():
    buf = EpisodeBuffer(standard_scheme(O, S, A), N, LIMIT, capacity=4)
    buf.insert(episodes([1, 1, 1], start=0))
    buf.insert(episodes([2, 2, 2], start=10))
    assert len(buf) == 4 and buf.episodes_in == 6
    ids = sorted(int(x) // 100 for x in buf.sample(4)["obs"][:, 0, 0, 0])
    assert ids == [2, 10, 11, 12]                       # episodes 0 and 1 were overwritten
    latest = buf.latest(2)
    assert [int(x) // 100 for x in latest["obs"][:, 0, 0, 0]] == [11, 12]


def test_float16_storage_comes_back_float32():
    buf = EpisodeBuffer(standard_scheme(O, S, A), N, LIMIT, capacity=4, float_dtype=torch.float16)
    assert buf.data["obs"].dtype == torch.float16 and buf.data["avail"].dtype == torch.bool
    buf.insert(episodes([2]))
    batch = buf.sample(1)
    assert batch["obs"].dtype == torch.float32 and batch["obs"][0, 1, 0, 0] == 1.0


def test_custom_scheme_field_and_errors():
    scheme = {**standard_scheme(O, S, A), "neighbours": Field((N,), torch.bool, per_agent=True)}
    buf = EpisodeBuffer(scheme, N, LIMIT, capacity=2)
    assert buf.data["neighbours"].shape == (2, LIMIT + 1, N, N)
    with pytest.raises(CcomaError, match="neighbours"):
        buf.insert(episodes([1]))                       # missing a declared field
    with pytest.raises(CcomaError, match="holds 0"):
        buf.sample(1)
    with pytest.raises(CcomaError, match="filled"):
        EpisodeBuffer({"obs": Field((O,))}, N, LIMIT, 2)


def test_action_ids_stored_narrow_come_back_exact():
    scheme = standard_scheme(O, S, A)
    buf = EpisodeBuffer(scheme, N, LIMIT, capacity=3)
    assert buf.data["actions"].dtype == torch.int8                  # 1 byte per id instead of 8
    eps = episodes([3])
    eps["actions"][0, :3] = torch.tensor([[A - 1, 0], [-1, 2], [1, A - 1]])
    buf.insert(eps)
    got = buf.sample(1)["actions"]
    assert got.dtype == torch.int64 and torch.equal(got[0, :3], eps["actions"][0, :3].long())
    wide = standard_scheme(O, S, 300)["actions"]                     # ids beyond int8 get int16
    assert wide.store == torch.int16


def _round_trip(buf, tmp_path):
    from ccoma import checkpoint

    checkpoint.save({"format": "ccoma-checkpoint-1", "buffer": checkpoint.buffer_state(buf)}, tmp_path / "c.pt")
    sd = checkpoint.load(tmp_path / "c.pt")["buffer"]
    fresh = EpisodeBuffer(buf.scheme, buf.n_agents, buf.slots - 1, buf.capacity)
    checkpoint.load_buffer_state(fresh, sd)
    for k in buf.data:
        assert torch.equal(fresh.data[k], buf.data[k]), k
    assert torch.equal(fresh.lengths, buf.lengths) and torch.equal(fresh.ids, buf.ids)
    assert (fresh.ptr, fresh.size, fresh.episodes_in) == (buf.ptr, buf.size, buf.episodes_in)
    return sd, (tmp_path / "c.pt").stat().st_size


def test_checkpointed_replay_keeps_only_live_slots_and_restores_exactly(tmp_path):
    """A replay filled by real rollouts (wrapped around its ring) comes back bit for bit from a
    checkpoint that stores only each episode's live slots; padding that is not zero is kept whole."""
    from ccoma.algos import registry
    from ccoma.data.rollout import Rollout
    from ccoma.sim.env import SimEnv

    torch.manual_seed(0)
    env = SimEnv.from_map("3m", n_envs=8, seed=1)
    learner = registry.make("qmix", env.get_env_info(), "cpu")
    buf = EpisodeBuffer(learner.scheme(), env.n_agents, env.episode_limit, capacity=24)
    Rollout(env, learner, buf).run(1_500, learn=False)
    assert buf.episodes_in > buf.capacity and buf.lengths.max() < env.episode_limit   # wrapped; padded
    sd, packed_bytes = _round_trip(buf, tmp_path)
    assert sd["packed"]
    live = int((buf.lengths + 1).sum())
    assert sd["data"]["obs"].shape[0] == live < buf.size * buf.slots

    assert bool(buf.zero_padded.all())      # the rollout vouches for its padding: no scan needed

    # an episode inserted by other code whose padding is not zero: checked, and every slot is kept
    other = {k: v[:1].clone() for k, v in buf.data.items()}
    other["reward"][0, -1] = 1.0
    other["filled"][0] = False
    other["filled"][0, :3] = True
    buf.insert(other)
    assert not bool(buf.zero_padded[(buf.ptr - 1) % buf.capacity])
    sd, full_bytes = _round_trip(buf, tmp_path)
    assert not sd.get("packed") and full_bytes > packed_bytes
