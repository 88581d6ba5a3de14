"""Comparing learner state dicts bit for bit (tests/job shares it)."""
import torch


def state_tensors(sd: dict, prefix: str = ""):
    """(dotted name, tensor) of every tensor in a nested state dict (a learner's ``state_dict()``)."""
    for k, v in sd.items():
        if isinstance(v, dict):
            yield from state_tensors(v, f"{prefix}{k}.")
        elif isinstance(v, torch.Tensor):
            yield f"{prefix}{k}", v


def different_tensors(a: dict, b: dict) -> list[str]:
    """The names whose tensors differ between two state dicts (which must hold the same names, several)."""
    ta, tb = dict(state_tensors(a)), dict(state_tensors(b))
    assert ta.keys() == tb.keys() and len(ta) > 4
    return [k for k in ta if not torch.equal(ta[k], tb[k])]
