"""Where a deployment's trained weights come from when it does not train them itself
(``ccoma deploy --checkpoint``): a ccoma checkpoint, or a registered model's policy folder."""
from __future__ import annotations

from pathlib import Path

from ccoma import checkpoint as ckpt
from ccoma.errors import CcomaError

FINAL_LEVEL = 10 ** 12  # a schedule step past every anneal: the exploration schedule's final level


def trained_weights(path: str, learner, algo: str) -> tuple[dict, int]:
    """(trained weights, exploration step at the end of training).

    A checkpoint holds both. A policy folder holds the agent network only (checked: content hash,
    allowed network): the other networks (critic, mixer) start fresh and the deployment explores at
    the schedule's final level.
    """
    p = Path(path)
    if p.is_dir():
        from ccoma.serving import read_policy_dir

        learner.networks()["agent"].load_state_dict(read_policy_dir(p)[1])
        return learner.state_dict(), FINAL_LEVEL
    state = ckpt.load(p)
    if state.get("algo") != algo:
        raise CcomaError(f"checkpoint {p} holds a '{state.get('algo')}' learner, not '{algo}' (--algo)")
    if not state.get("trained"):
        raise CcomaError(f"checkpoint {p} holds no finished training stage")
    return state["trained"], int(state.get("trained_t", FINAL_LEVEL))
