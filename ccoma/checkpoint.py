"""Checkpoints that load without executing pickled code (``torch.load(weights_only=True)``) and
whose content is checked before it is trusted.

A checkpoint holds only tensors, numbers, strings, lists and dicts: the learner's state, the replay
buffer's filled part, the random-number states and the job's counters. The file is one header line,
``CCOMA-CHECKPOINT 1 sha256=<hex of the rest>``, then ``torch.save``'s bytes; a flipped byte anywhere
is a one-line error on load, not silently wrong weights. It is written to a temporary file and
renamed into place, so a kill while saving never leaves a half-written checkpoint.
"""
from __future__ import annotations

import hashlib
import io
import os
from pathlib import Path

import torch

from ccoma.errors import CcomaError

MAGIC = b"CCOMA-CHECKPOINT 1 sha256="
MAX_BYTES = 8 << 30  # refuse to read anything larger into memory


def save(state: dict, path: str | Path) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    buf = io.BytesIO()
    torch.save(state, buf)
    payload = buf.getbuffer()
    tmp = path.with_suffix(path.suffix + ".tmp")
    with open(tmp, "wb") as fh:
        fh.write(MAGIC + hashlib.sha256(payload).hexdigest().encode() + b"\n")
        fh.write(payload)
    os.replace(tmp, path)


def read_verified(path: Path, what: str = "checkpoint") -> bytes:
    """The payload of a hashed file, after checking its header and its sha256 (one-line errors)."""
    try:
        size = path.stat().st_size
        if size > MAX_BYTES:
            raise CcomaError(f"{what} {path}: {size} bytes is too large for a ccoma {what}")
        data = path.read_bytes()
    except FileNotFoundError:
        raise CcomaError(f"{what} {path}: no such file") from None
    except IsADirectoryError:
        raise CcomaError(f"{what} {path}: is a folder, not a {what} file") from None
    except OSError as exc:
        raise CcomaError(f"{what} {path}: cannot read it ({exc.strerror})") from None
    head, sep, payload = data.partition(b"\n")
    if not head.startswith(MAGIC) or not sep:
        raise CcomaError(f"{what} {path} is corrupt or not a ccoma {what} (no integrity header)")
    if hashlib.sha256(payload).hexdigest().encode() != head[len(MAGIC):]:
        raise CcomaError(f"{what} {path} is corrupt: its content does not match its sha256 (changed or damaged "
                         f"since it was written)")
    return payload


def load(path: str | Path) -> dict:
    """Load a checkpoint; a corrupt, tampered or foreign file is a one-line CcomaError."""
    path = Path(path)
    payload = read_verified(path)
    try:
        state = torch.load(io.BytesIO(payload), map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unpickling failure means a corrupt checkpoint
        reason = str(exc).strip().splitlines()[0][:160] if str(exc).strip() else type(exc).__name__
        raise CcomaError(f"checkpoint {path} is corrupt or not a ccoma checkpoint ({reason})") from None
    if not isinstance(state, dict) or state.get("format") != "ccoma-checkpoint-1":
        raise CcomaError(f"checkpoint {path} is not a ccoma checkpoint")
    return state


def _live_slots(lengths: torch.Tensor, slots: int) -> torch.Tensor:
    """[n, slots] bool: an episode's steps and the final slot after them (what the rollout writes)."""
    return torch.arange(slots, device=lengths.device)[None] < (lengths + 1).clamp_max(slots)[:, None]


def buffer_state(buf) -> dict:
    """The buffer's filled part. Only each episode's live slots are kept (``packed``): episodes are
    padded to the episode limit and are about half padding, which the rollout leaves zero; if any
    padding is not zero (episodes inserted by other code), every slot is kept."""
    n = buf.size
    state = {"lengths": buf.lengths[:n].clone(), "ids": buf.ids[:n].clone(), "ptr": buf.ptr, "size": n,
             "episodes_in": buf.episodes_in}
    live = _live_slots(buf.lengths[:n], buf.slots)
    if not any(bool(v[:n][~live].any()) for v in buf.data.values()):
        return {**state, "packed": True, "data": {k: v[:n][live] for k, v in buf.data.items()}}
    return {**state, "data": {k: v[:n].clone() for k, v in buf.data.items()}}


def load_buffer_state(buf, sd: dict) -> None:
    n = int(sd["size"])
    if sd.get("packed"):
        live = _live_slots(sd["lengths"].to(buf.lengths.device), buf.slots)
        for k, v in sd["data"].items():
            rows = buf.data[k][:n]
            rows.zero_()
            rows[live] = v.to(rows.device)
    else:
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
