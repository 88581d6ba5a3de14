"""Checkpoints written in the background: what is on disk is the job as it was when the checkpoint
was taken, however far the job has gone on since, and a failed write is an error, not lost."""
from __future__ import annotations

import copy
import threading

import pytest
import torch

from ccoma import checkpoint as ckpt


def _job(tmp_path):
    from ccoma.experiment import job_specs
    from ccoma.job.runner import Job
    from ccoma.run_config import resolve

    cfg = resolve("shifting_spawn", "smoke", methods=("qmix",), tracking_uri=f"sqlite:///{tmp_path / 'm.db'}",
                  run_dir=str(tmp_path / "runs"), report=False)
    return Job(job_specs(cfg, "k", {})[0])


def test_a_checkpoint_holds_the_job_as_it_was_when_it_was_taken(tmp_path, monkeypatch):
    from ccoma.data.rollout import Rollout

    job = _job(tmp_path)
    stage = job.states[0]
    buffer = job._buffer()
    env = job.stage_envs.get(job.scenario.source("train", seed=0), job.spec.budget.n_envs, 0)
    rollout = Rollout(env, job.learner, buffer)
    rollout.run(400, learn=False)
    stage.t = 400
    stage.record_episodes({"won": torch.tensor([1.0, 0.0]), "return": torch.tensor([3.0, 1.0])})
    stage.log_online({"loss": [0.5]})
    stage.evals.append({"step": 400, "win_rate": {"a": 0.5}, "return": {"a": 1.0}})
    stage.tests["steps"].append(400)
    taken = {"stage": copy.deepcopy(stage.state()), "learner": job.learner.state_dict(),
             "lengths": buffer.lengths.clone(), "obs": buffer.data["obs"].clone()}

    gate, real = threading.Event(), ckpt.save
    monkeypatch.setattr(ckpt, "save", lambda state, path: (gate.wait(30), real(state, path)))
    job._save(stage, ckpt.rng_state(env), buffer, wait=False)
    assert not job.ckpt_path.exists()                    # still being written

    # the job goes on: more episodes into the replay, a learner update, more series and evaluations
    rollout.run(400, learn=False)
    job.learner.train_step(buffer.sample(4), 800)
    stage.t = 800
    stage.log_online({"loss": [0.25]})
    stage.evals.append({"step": 800, "win_rate": {"a": 1.0}, "return": {"a": 2.0}})
    stage.tests["steps"].append(800)
    stage.window.append((1.0, 9.0))
    assert not torch.equal(buffer.lengths, taken["lengths"])
    gate.set()
    job.writer.wait()

    saved = ckpt.load(job.ckpt_path)
    assert saved["stage"] == taken["stage"]
    for name, tensor in taken["learner"]["modules"]["agent"].items():
        assert torch.equal(saved["learner"]["modules"]["agent"][name], tensor), name
    fresh = job._buffer()
    ckpt.load_buffer_state(fresh, saved["buffer"])
    n = fresh.size
    assert torch.equal(fresh.lengths[:n], taken["lengths"][:n])
    assert torch.equal(fresh.data["obs"][:n], taken["obs"][:n])


def test_a_failed_write_is_raised_by_the_next_wait_and_by_the_next_checkpoint(tmp_path):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the checkpoint's folder should be")
    writer = ckpt.Writer()
    writer.submit({"format": "ccoma-checkpoint-1"}, blocker / "checkpoint.pt")
    with pytest.raises(OSError):
        writer.wait()
    writer.wait()                                                  # raised once, then clear
    writer.submit({"format": "ccoma-checkpoint-1"}, blocker / "checkpoint.pt")
    with pytest.raises(OSError):
        writer.submit({"format": "ccoma-checkpoint-1"}, tmp_path / "ok.pt")
    writer.submit({"format": "ccoma-checkpoint-1", "n": 3}, tmp_path / "ok.pt")
    writer.wait()
    assert ckpt.load(tmp_path / "ok.pt")["n"] == 3


def test_a_streamed_checkpoint_is_hashed_and_its_damage_refused(tmp_path):
    from ccoma.errors import CcomaError

    state = {"format": "ccoma-checkpoint-1", "w": torch.arange(100_000, dtype=torch.float32), "note": "x"}
    ckpt.save(state, tmp_path / "c.pt")
    back = ckpt.load(tmp_path / "c.pt")
    assert torch.equal(back["w"], state["w"]) and back["note"] == "x"
    assert not (tmp_path / "c.pt.tmp").exists()
    data = bytearray((tmp_path / "c.pt").read_bytes())
    data[len(data) // 2] ^= 0x01
    (tmp_path / "c.pt").write_bytes(bytes(data))
    with pytest.raises(CcomaError, match="does not match its sha256"):
        ckpt.load(tmp_path / "c.pt")


def test_a_checkpoint_rewrites_the_previous_file_never_the_current_one(tmp_path, monkeypatch):
    import os

    path, spare = tmp_path / "checkpoint.pt", tmp_path / "checkpoint.pt.tmp"
    ckpt.save({"format": "ccoma-checkpoint-1", "n": 1, "w": torch.ones(50_000)}, path)
    first = path.stat().st_ino
    ckpt.save({"format": "ccoma-checkpoint-1", "n": 2}, path)        # smaller: the kept file is truncated
    assert ckpt.load(path)["n"] == 2 and "w" not in ckpt.load(path)
    assert spare.stat().st_ino == first                               # the previous file, kept to rewrite
    second = path.stat().st_ino
    ckpt.save({"format": "ccoma-checkpoint-1", "n": 3}, path)
    assert path.stat().st_ino == first and spare.stat().st_ino == second
    assert not (tmp_path / "checkpoint.pt.old").exists()

    # a save that dies halfway leaves the last checkpoint whole, even if the spare name links to it
    spare.unlink()
    os.link(path, spare)

    def dies(*args, **kwargs):
        raise OSError("disk gone")

    monkeypatch.setattr(torch, "save", dies)
    with pytest.raises(OSError, match="disk gone"):
        ckpt.save({"format": "ccoma-checkpoint-1", "n": 4}, path)
    monkeypatch.undo()
    assert ckpt.load(path)["n"] == 3
    ckpt.save({"format": "ccoma-checkpoint-1", "n": 5}, path)
    assert ckpt.load(path)["n"] == 5
    ckpt.discard_spare(path)
    assert not spare.exists() and ckpt.load(path)["n"] == 5
