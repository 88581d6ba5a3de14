"""Which parameters learn in each phase. The harness applies this; learners never decide it.

Training: everything learns. Deployment, frozen mode: nothing learns. Deployment, continual mode:
only parameters whose ``network.parameter`` name matches a pattern of the trainable set.
"""
from __future__ import annotations

import fnmatch
from typing import Mapping

import torch.nn as nn

from ccoma.errors import ConfigError


def set_all(networks: Mapping[str, nn.Module], flag: bool) -> None:
    for net in networks.values():
        for p in net.parameters():
            p.requires_grad_(flag)


def apply_trainable(networks: Mapping[str, nn.Module], patterns: Mapping[str, tuple[str, ...]]) -> dict[str, list[str]]:
    """Freeze everything, then unfreeze the matching parameters; returns ``{network: [names]}``.

    Patterns for networks the learner does not have are ignored (a QMIX set works for VDN, which
    has no mixer parameters); a pattern that matches nothing in an existing network is an error,
    since it almost always means a typo.
    """
    set_all(networks, False)
    chosen: dict[str, list[str]] = {}
    for net_name, pats in patterns.items():
        if net_name not in networks:
            continue
        params = dict(networks[net_name].named_parameters())
        for pat in pats:
            hits = [n for n in params if fnmatch.fnmatch(n, pat)]
            if not hits:
                raise ConfigError("continual.trainable",
                                  f"pattern '{pat}' matches no parameter of network '{net_name}' "
                                  f"(parameters: {', '.join(params)})")
            for n in hits:
                params[n].requires_grad_(True)
                chosen.setdefault(net_name, []).append(n)
    return chosen


def count(networks: Mapping[str, nn.Module]) -> tuple[int, int]:
    """(trainable, total) parameter counts."""
    total = sum(p.numel() for net in networks.values() for p in net.parameters())
    live = sum(p.numel() for net in networks.values() for p in net.parameters() if p.requires_grad)
    return live, total
