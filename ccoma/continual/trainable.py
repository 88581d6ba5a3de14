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


def counts(networks: Mapping[str, nn.Module], patterns: Mapping[str, tuple[str, ...]] | None | bool
           ) -> dict[str, tuple[int, int]]:
    """{network: (trainable, total)} parameter counts under a trainable set, without changing anything.

    ``patterns``: a trainable set (as :func:`apply_trainable` takes), ``True`` (everything learns,
    training) or ``None``/``False`` (nothing learns, frozen deployments).
    """
    out = {}
    for net_name, net in networks.items():
        params = dict(net.named_parameters())
        total = sum(p.numel() for p in params.values())
        if patterns is True:
            live = total
        elif not patterns:
            live = 0
        else:
            pats = patterns.get(net_name, ())
            live = sum(p.numel() for n, p in params.items() if any(fnmatch.fnmatch(n, pat) for pat in pats))
        out[net_name] = (live, total)
    return out
