"""Checkpoints that load without executing pickled code (``torch.load(weights_only=True)``) and
whose content is checked before it is trusted.

A checkpoint holds only tensors, numbers, strings, lists and dicts: the learner's state, the replay
buffer's filled part, the random-number states and the job's counters. The file is one header line,
``CCOMA-CHECKPOINT 1 sha256=<hex of the rest>``, then ``torch.save``'s bytes; a flipped byte anywhere
is a one-line error on load, not silently wrong weights. It is written to a temporary file and
renamed into place, so a kill while saving never leaves a half-written checkpoint.

A job hands each checkpoint to a :class:`Writer`, which writes it in a background thread while the
job goes on: the caller's state is a snapshot (tensors cloned or freshly packed, containers copied),
so later training cannot reach what is being written.
"""
from __future__ import annotations

import hashlib
import io
import os
import threading
from pathlib import Path

import torch

from ccoma.errors import CcomaError

MAGIC = b"CCOMA-CHECKPOINT 1 sha256="
MAX_BYTES = 8 << 30  # refuse to read anything larger into memory


class _Hashing:
    """A file-like sink for ``torch.save``: each chunk goes to the file and into the sha256."""

    def __init__(self, fh):
        self.fh, self.sha = fh, hashlib.sha256()

    def write(self, data) -> int:
        self.sha.update(data)   # both release the GIL for large chunks (the storages)
        return self.fh.write(data)

    def flush(self) -> None:
        self.fh.flush()


def save(state: dict, path: str | Path) -> None:
    """Write ``state`` to ``path`` (header with the sha256, then ``torch.save``'s bytes), atomically.

    The bytes are streamed to ``<path>.tmp`` while they are hashed (no copy of the whole payload in
    memory), the header's digest is filled in at the end, and the file is renamed into place. The
    previous checkpoint's file is kept as the next ``.tmp`` and overwritten in place next time: a
    new file of ~700 MB (the paper budget's replay) costs the kernel 0.5-2.4 s to allocate and the
    old one's release, rewriting one whose pages are cached ~0.1 s. ``path`` is always a whole
    checkpoint: the kept file is linked aside before the rename and only then renamed to ``.tmp``;
    ``discard_spare`` removes it when no checkpoint follows."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp, aside = _spare(path), _aside(path)
    if tmp.exists() and path.exists() and os.path.samefile(tmp, path):
        tmp.unlink()   # a link to the checkpoint itself (never left by save): neither rewrite nor truncate it
    with open(tmp, "r+b" if tmp.exists() else "wb") as fh:
        fh.write(MAGIC + b"0" * 64 + b"\n")   # the digest's place: sha256 is 64 hex digits
        sink = _Hashing(fh)
        torch.save(state, sink)
        fh.truncate()
        fh.seek(len(MAGIC))
        fh.write(sink.sha.hexdigest().encode())
    keep = path.exists()
    if keep:
        try:
            aside.unlink(missing_ok=True)
            os.link(path, aside)   # the previous checkpoint's file outlives the rename below
        except OSError:            # a file system without hard links: the next save writes a new file
            keep = False
    os.replace(tmp, path)
    if keep:
        os.replace(aside, tmp)


def _spare(path: Path) -> Path:
    """The file the next save writes (the previous checkpoint's, kept)."""
    return path.with_name(path.name + ".tmp")


def _aside(path: Path) -> Path:
    """The name the current checkpoint's file is linked to while the new one is renamed into place."""
    return path.with_name(path.name + ".old")


def discard_spare(path: str | Path) -> None:
    """Remove the file ``save`` keeps beside ``path`` for the next checkpoint (none will follow)."""
    for extra in (_spare(Path(path)), _aside(Path(path))):
        extra.unlink(missing_ok=True)


def snapshot(obj):
    """A copy of ``obj`` that later changes to the original cannot reach: tensors cloned (detached),
    dicts, lists and tuples copied, everything else (numbers, strings) shared. A learner's state dict
    and a stage's lists go into a checkpoint this way while the job goes on."""
    if isinstance(obj, torch.Tensor):
        return obj.detach().clone()
    if isinstance(obj, dict):
        return {k: snapshot(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(snapshot(v) for v in obj)
    return obj


class Writer:
    """Writes one checkpoint at a time in a background thread.

    ``submit`` waits for the previous checkpoint, then starts writing the new one and returns;
    ``wait`` blocks until it is on disk and raises what writing it raised (a full disk is the job's
    error at the next checkpoint, not lost). A checkpoint on disk is always whole: a kill while one
    is written leaves the previous one (``save`` renames into place)."""

    def __init__(self):
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None

    def submit(self, state: dict, path: str | Path) -> None:
        self.wait()
        self._thread = threading.Thread(target=self._write, args=(state, Path(path)), name="ccoma-checkpoint")
        self._thread.start()

    def _write(self, state: dict, path: Path) -> None:
        try:
            save(state, path)
        except BaseException as exc:  # noqa: BLE001 - handed to the job's thread by wait()
            self._error = exc

    def wait(self) -> None:
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        if self._error is not None:
            error, self._error = self._error, None
            raise error


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
    padded to the episode limit and are about half padding, which the rollout leaves zero. Padding
    of episodes not inserted as ``zero_padded`` is checked (a scan of the whole replay, ~0.6 s at
    5000 episodes); if any is not zero, every slot is kept."""
    n = buf.size
    state = {"lengths": buf.lengths[:n].clone(), "ids": buf.ids[:n].clone(), "ptr": buf.ptr, "size": n,
             "episodes_in": buf.episodes_in}
    live = _live_slots(buf.lengths[:n], buf.slots)
    unchecked = ~buf.zero_padded[:n]
    if not bool(unchecked.any()) or not any(bool(v[:n][unchecked[:, None] & ~live].any()) for v in buf.data.values()):
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
    buf.zero_padded[:n] = bool(sd.get("packed"))   # a packed state's padding was zero-filled above
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
