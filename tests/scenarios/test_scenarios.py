"""The scenario scheduler: shipped files, determinism, weights, boundaries, drift, cycles, formations, CLI."""
from __future__ import annotations

import math
import pickle

import pytest
import torch
import yaml

from ccoma.scenarios import list_scenarios, load_scenario
from ccoma.sim.units import load_units

SHIPPED = list_scenarios()
EXPECTED = {"shifting_spawn", "shifting_composition", "paper_dynamic", "cyclic_composition", "drift_spawn",
            "2s3z", "3s5z"}
KNOWN_SITES = {"east", "east_north", "east_south"}
NEW_SITES = {"north", "south", "far_northeast", "far_southeast", "behind"}


def _counts(specs, scn, unit):
    return (specs.enemy_types == scn.unit_types.index(unit)).sum(1)


def _enemy_site(specs, scn):
    """Nearest spawn site (name) to each episode's enemy centroid."""
    names = list(scn.map.sites)
    centres = torch.tensor([scn.map.sites[n].center for n in names])
    d = torch.cdist(specs.enemy_pos.mean(1), centres)
    return [names[i] for i in d.argmin(1).tolist()]


def _check_formations(specs, scn):
    """No two units overlap (actual radii) and every unit lies inside the arena."""
    units = load_units()
    radius = torch.tensor([units[t].radius for t in scn.unit_types])
    pos = torch.cat([specs.ally_pos, specs.enemy_pos], 1)                       # [k, N+E, 2]
    r = radius[torch.cat([specs.ally_types, specs.enemy_types], 1)]              # [k, N+E]
    dist = torch.cdist(pos, pos)
    need = r[:, :, None] + r[:, None, :]
    eye = torch.eye(pos.shape[1], dtype=torch.bool)
    assert bool(((dist >= need - 1e-4) | eye).all()), "units overlap"
    w, h = scn.map.size
    assert bool((pos[..., 0] >= r - 1e-4).all() and (pos[..., 0] <= w - r + 1e-4).all())
    assert bool((pos[..., 1] >= r - 1e-4).all() and (pos[..., 1] <= h - r + 1e-4).all())


def test_every_requested_scenario_is_shipped():
    assert EXPECTED <= set(SHIPPED)


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_scenario_produces_consistent_specs(name):
    scn = load_scenario(name)
    assert scn.name == name and "\n" not in scn.description and scn.description
    assert list(scn.unit_types) == sorted(scn.unit_types)
    n, e = scn.n_agents, scn.n_enemies
    for stage in ("train", "deploy"):
        src = scn.source(stage, seed=3)
        for step in (0, scn.stage_steps(stage) // 2, scn.stage_steps(stage) - 1):
            src.set_step(step)
            sp = src.sample(64)
            assert sp.ally_types.shape == (64, n) and sp.enemy_types.shape == (64, e)
            assert sp.ally_pos.shape == (64, n, 2) and sp.enemy_pos.shape == (64, e, 2)
            assert sp.ally_pos.dtype == torch.float32 and sp.ally_types.dtype == torch.int64
            assert sp.phase.shape == (64,) and sp.unseen.dtype == torch.bool
            assert int(sp.phase.max()) < len(scn.phase_names)
            assert int(torch.cat([sp.ally_types, sp.enemy_types], 1).max()) < len(scn.unit_types)
            _check_formations(sp, scn)
        if stage == "train":
            src.set_step(scn.train_steps // 3)
            assert not bool(src.sample(256).unseen.any()), "training episodes are never unseen"
    for phase in scn.deploy_phases:
        sp = scn.phase_source(phase, seed=1).sample(32)
        assert bool((sp.phase == scn.phase_names.index(phase)).all())


def test_sampling_is_deterministic_and_batch_independent():
    scn = load_scenario("paper_dynamic")
    a, b = scn.source("deploy", seed=7), scn.source("deploy", seed=7)
    for src in (a, b):
        src.set_step(500_000)
    one = a.sample(10)
    four, six = b.sample(4), b.sample(6)
    for field in ("ally_types", "enemy_types", "ally_pos", "enemy_pos", "phase", "unseen"):
        assert torch.equal(getattr(one, field), torch.cat([getattr(four, field), getattr(six, field)]))
    other = scn.source("deploy", seed=8)
    other.set_step(500_000)
    assert not torch.equal(other.sample(10).enemy_pos, one.enemy_pos)
    keys = torch.tensor([5, -3, 2 ** 40 + 1])
    assert torch.equal(a.sample(3, keys=keys).enemy_pos, b.sample(3, keys=keys).enemy_pos)
    c = pickle.loads(pickle.dumps(a))                      # sources travel to worker processes
    assert torch.equal(c.sample(5).enemy_types, a.sample(5).enemy_types)


def test_compositions_and_sites_follow_the_stated_weights():
    scn = load_scenario("paper_dynamic")
    k = 20_000
    train = scn.source("train", seed=0).sample(k)
    hyd = _counts(train, scn, "hydralisk")
    assert int(hyd.max()) <= 1                                         # at most one hydralisk
    assert bool((train.enemy_types[:, :2] == scn.unit_types.index("stalker")).all())  # 2 stalkers always
    assert abs(hyd.float().mean().item() - 0.5) < 0.015                # 0.75/0.25 weights, max 1 -> 50/50
    sites = _enemy_site(train, scn)
    assert set(sites) == KNOWN_SITES
    for s in KNOWN_SITES:
        assert abs(sites.count(s) / k - 1 / 3) < 0.015
    new = scn.phase_source("unseen", seed=0).sample(k)
    hyd = _counts(new, scn, "hydralisk")
    for c in range(4):                                                 # Binomial(3, 0.5)
        assert abs((hyd == c).float().mean().item() - math.comb(3, c) / 8) < 0.015
    assert set(_enemy_site(new, scn)) == KNOWN_SITES | NEW_SITES
    # unseen exactly when the situation is outside training: >1 hydralisk or a new site
    expect = (hyd > 1) | torch.tensor([s in NEW_SITES for s in _enemy_site(new, scn)])
    assert torch.equal(new.unseen, expect)


def test_phase_boundaries_fall_at_the_stated_steps_and_rescale():
    scn = load_scenario("paper_dynamic")
    training, unseen = scn.phase_names.index("training"), scn.phase_names.index("unseen")
    assert scn.boundaries("deploy") == [200_000] and scn.boundaries("train") == []
    for deploy_steps, edge in ((1_000_000, 200_000), (10_000, 2_000), (3_000, 600)):
        src = scn.source("deploy", seed=0, train_steps=50_000, deploy_steps=deploy_steps)
        assert src.unseen_from == edge
        src.set_step(edge - 1)
        assert bool((src.sample(200).phase == training).all())
        src.set_step(edge)
        assert bool((src.sample(200).phase == unseen).all())
    small = scn.rescaled(train_steps=50_000, deploy_steps=10_000)
    assert small.train_steps == 50_000 and small.segments("train")[-1].end == 50_000
    assert small.segments("deploy")[-1].end == 10_000
    cyc = load_scenario("cyclic_composition").rescaled(deploy_steps=10_000)
    assert cyc.boundaries("deploy") == [2_000, 4_000, 6_000, 8_000]


def test_drift_interpolates_the_mixture():
    scn = load_scenario("drift_spawn")
    src = scn.source("deploy", seed=2, deploy_steps=100_000)       # drift from 20K to 100K
    new = scn.phase_names.index("new_sites")
    fracs = []
    for step in (20_000, 40_000, 60_000, 80_000, 99_999):
        src.set_step(step)
        sp = src.sample(8_000)
        n_new = int((sp.phase == new).sum())
        fracs.append(n_new / len(sp.phase))
        assert sum(s in NEW_SITES for s in _enemy_site(sp, scn)) == n_new
    assert fracs[0] < 0.01 and fracs[-1] > 0.99
    assert abs(fracs[2] - 0.5) < 0.025 and abs(fracs[1] - 0.25) < 0.025 and abs(fracs[3] - 0.75) < 0.025
    assert float(scn.phase_weights("deploy", 600_000)[new]) == pytest.approx(0.5)


def test_cycle_alternates():
    scn = load_scenario("cyclic_composition")
    src = scn.source("deploy", seed=0)
    hyd_idx = scn.unit_types.index("hydralisk")
    seen = []
    for step in (100_000, 300_000, 500_000, 700_000, 900_000):
        src.set_step(step)
        sp = src.sample(50)
        assert len(set(sp.phase.tolist())) == 1
        seen.append(scn.phase_names[int(sp.phase[0])])
        assert bool(((sp.enemy_types == hyd_idx).sum(1) == (3 if seen[-1] == "hydralisks" else 0)).all())
    assert seen == ["zealots", "hydralisks", "zealots", "hydralisks", "zealots"]


def _write(tmp_path, doc, name="custom.yaml"):
    path = tmp_path / name
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def test_mix_reflect_and_surrounded(tmp_path):
    doc = {"description": "test", "map": "dynamic_5v5",
           "protocol": {"train_steps": 1000, "deploy_steps": 1000, "unseen_from": None},
           "enemies": {"n_units": 5, "unit_types": ["zealot", "stalker"], "weights": [0.5, 0.5],
                       "exception_unit_types": ["zealot"]},
           "phases": {"refl": {"start_positions": {"dist_type": "reflect"}},
                      "surr": {"start_positions": {"dist_type": "surrounded_and_reflect", "p": 0.3}}},
           "schedule": {"train": [{"mix": {"refl": 0.7, "surr": 0.3}}], "deploy": [{"mix": {"refl": 0.7, "surr": 0.3}}]}}
    scn = load_scenario(_write(tmp_path, doc))
    sp = scn.source("train", seed=1).sample(10_000)
    _check_formations(sp, scn)
    assert abs((sp.phase == 0).float().mean().item() - 0.7) < 0.02
    z = _counts(sp, scn, "zealot")
    assert int(z.max()) <= 4                                            # zealots never make the whole team
    w = scn.map.size[0]
    a_c, e_c = sp.ally_pos[:, 0], sp.enemy_pos[:, 0]                    # unit 0 sits at its formation's centre
    centred = (a_c - 16).norm(dim=1) < 0.2                              # surrounded: agents at the centre
    refl = ~centred
    assert bool((sp.ally_pos[refl][..., 0] < w / 2).all())
    assert torch.allclose(e_c[refl, 0], w - a_c[refl, 0], atol=0.31)   # mirrored halves
    assert torch.allclose(e_c[refl, 1], a_c[refl, 1], atol=0.31)
    in_surr = sp.phase == 1
    frac_reflect = (refl & in_surr).sum().item() / in_surr.sum().item()
    assert abs(frac_reflect - 0.3) < 0.03                               # SMACv2's p = P(reflect)
    off = sp.enemy_pos[centred] - 16                                    # enemies on the diagonals
    slack = (scn.geometry.radius(5) + scn.geometry.jitter) * math.sqrt(2)   # a unit's offset from its group centre
    assert bool(((off[..., 0].abs() - off[..., 1].abs()).abs() <= slack).all())
    assert bool((off.norm(dim=-1) > scn.geometry.extent(5)).all())        # clear of the agents


def test_timeline_is_exact():
    scn = load_scenario("paper_dynamic")
    tl = scn.timeline("deploy", points=101)
    assert torch.allclose(tl["enemy_types"].sum(1), torch.ones(len(tl["steps"]), dtype=torch.float64))
    assert torch.allclose(tl["starts"].sum(1), torch.ones(len(tl["steps"]), dtype=torch.float64))
    hyd = scn.unit_types.index("hydralisk")
    before, after = tl["enemy_types"][0, hyd].item(), tl["enemy_types"][-1, hyd].item()
    assert before == pytest.approx(0.5 / 5) and after == pytest.approx(1.5 / 5)


def test_episodes_run_in_the_simulator():
    from ccoma.sim.env import SimEnv

    for name in ("paper_dynamic", "cyclic_composition", "3s5z"):
        scn = load_scenario(name)
        src = scn.source("deploy", seed=0, deploy_steps=1000)
        src.set_step(999)
        env = SimEnv(scn.map, n_envs=4, source=src)
        env.reset()
        info = env.get_env_info()
        assert info["n_agents"] == scn.n_agents
        g = torch.Generator().manual_seed(0)
        for _ in range(5):
            avail = env.get_avail_actions()
            actions = torch.multinomial(avail.float().reshape(-1, avail.shape[-1]), 1, generator=g).reshape(4, -1)
            out = env.step(actions)
            assert out.obs.shape == (4, scn.n_agents, env.obs_dim)
            assert torch.isfinite(out.reward).all()


def test_cli_list_and_show(tmp_path):
    from click.testing import CliRunner

    from ccoma.cli import cli

    runner = CliRunner()
    res = runner.invoke(cli, ["scenarios", "list"])
    assert res.exit_code == 0, res.output
    for name in EXPECTED:
        assert name in res.output
    assert "dynamic_5v5" in res.output and "unseen from deploy step 200,000" in res.output
    png = tmp_path / "timeline.png"
    res = runner.invoke(cli, ["scenarios", "show", "paper_dynamic", "--output", str(png)])
    assert res.exit_code == 0, res.output
    assert "training" in res.output and "unseen" in res.output and "200,000" in res.output
    data = png.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    assert 600 <= width <= 4000 and 400 <= height <= 3000 and len(data) > 20_000


@pytest.mark.parametrize("name", ["2s3z", "3s5z"])
def test_static_smac_scenarios_start_in_the_maps_own_formation(name):
    """``formation: {layout: map}``: both teams, in roster order, on the map's own start grid (as
    ``SimEnv.from_map`` deals them, SMAC's fixed spawns), each unit within a tenth of a cell of its slot;
    the jitter comes from the scenario's own draws, so episodes still differ."""
    from ccoma.sim.env import SimEnv

    scn = load_scenario(name)
    assert scn.spec.formation.layout == "map"
    sp = scn.source("train", seed=5).sample(512)
    own = SimEnv.from_map(name, 1).source
    ally0, enemy0 = own.place(torch.zeros(1, scn.n_agents + scn.n_enemies, 2))
    slack = 0.1 * own._spacing + 1e-5
    assert float((sp.ally_pos - ally0).abs().max()) <= slack and float((sp.enemy_pos - enemy0).abs().max()) <= slack
    assert bool((sp.ally_types == own._ally).all()) and bool((sp.enemy_types == own._enemy).all())
    assert float((sp.ally_pos - ally0).abs().max()) > 0.5 * slack    # jittered, not one fixed picture
    _check_formations(sp, scn)


def test_map_layout_refuses_start_positions_and_lattice_fields(tmp_path):
    from ccoma.errors import ConfigError

    base = {"description": "test", "map": "2s3z", "formation": {"layout": "map"},
            "protocol": {"train_steps": 1000, "deploy_steps": 1000, "unseen_from": None},
            "phases": {"p": {}}, "schedule": {"train": [{"phase": "p"}], "deploy": [{"phase": "p"}]}}
    bad = [({"phases": {"p": {"start_positions": {"dist_type": "reflect"}}}}, "phases.p.start_positions"),
           ({"formation": {"layout": "map", "rotate": False}}, "formation.jitter"),
           ({"formation": {"layout": "grid"}}, "formation.layout")]
    for change, field in bad:
        with pytest.raises(ConfigError, match=field.replace(".", r"\.")):
            load_scenario(_write(tmp_path, {**base, **change}))
