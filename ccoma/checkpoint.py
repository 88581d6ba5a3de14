"""Checkpoints that load without executing pickled code (``torch.load(weights_only=True)``).

A checkpoint holds only tensors, numbers, strings, lists and dicts: the learner's state, the replay
buffer's filled part, the random-number states and the job's counters. It is written to a temporary
file and renamed into place, so a kill while saving never leaves a half-written checkpoint.
"""
from __future__ import annotations

import os
from pathlib import Path

import torch

from ccoma.errors import CcomaError


def save(state: dict, path: str | Path) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)


def load(path: str | Path) -> dict:
    """Load a checkpoint; a corrupt or foreign file is a one-line CcomaError."""
    path = Path(path)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise CcomaError(f"checkpoint {path}: no such file") from None
    except Exception as exc:  # noqa: BLE001 - any unpickling failure means a corrupt checkpoint
        reason = str(exc).strip().splitlines()[0][:160] if str(exc).strip() else type(exc).__name__
        raise CcomaError(f"checkpoint {path} is corrupt or not a ccoma checkpoint ({reason})") from None
    if not isinstance(state, dict) or state.get("format") != "ccoma-checkpoint-1":
        raise CcomaError(f"checkpoint {path} is not a ccoma checkpoint")
    return state


def buffer_state(buf) -> dict:
    n = buf.size
    return {"data": {k: v[:n].clone() for k, v in buf.data.items()}, "lengths": buf.lengths[:n].clone(),
            "ids": buf.ids[:n].clone(), "ptr": buf.ptr, "size": n, "episodes_in": buf.episodes_in}


def load_buffer_state(buf, sd: dict) -> None:
    n = int(sd["size"])
    for k, v in sd["data"].items():
        buf.data[k][:n] = v.to(buf.data[k].device)
    buf.lengths[:n] = sd["lengths"].to(buf.lengths.device)
    if "ids" in sd:
        buf.ids[:n] = sd["ids"].to(buf.ids.device)
    buf.ptr, buf.size, buf.episodes_in = int(sd["ptr"]), n, int(sd["episodes_in"])


def rng_state(env) -> dict:
    """The global torch streams and the environment's own (``BatchedEnv.get_rng_state``)."""
    state = {"torch": torch.get_rng_state(), "env": env.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def load_rng_state(env, sd: dict) -> None:
    torch.set_rng_state(sd["torch"])
    env_state = sd["env"]
    if not isinstance(env_state, dict):  # checkpoints written before the env contract held it
        env_state = {"generator": env_state, "episodes": sd.get("episodes")}
    env.set_rng_state(env_state)
    if "cuda" in sd and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(sd["cuda"])
