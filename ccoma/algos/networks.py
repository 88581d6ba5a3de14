"""Networks shared by the learners: the recurrent agent, COMA's critic, and input builders.

Shapes: B = batch (episodes or envs), T = time slots, N = agents, A = actions, H = hidden size.
Submodules carry stable names (``fc1``, ``rnn``, ``fc2``; ``fc1``..``fc3`` for the critic) so a
continual strategy can pick parameters by name ("agent.fc2.weight").
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from ccoma.algos.fused_gru import episode_packing, gru_packed, gru_sequence, runs_fused


class RNNAgent(nn.Module):
    """pymarl's agent: fc -> GRUCell -> fc; one set of weights shared by all agents."""

    def __init__(self, input_dim: int, n_actions: int, hidden_dim: int = 64):
        super().__init__()
        self.hidden_dim = hidden_dim
        self.fc1 = nn.Linear(input_dim, hidden_dim)
        self.rnn = nn.GRUCell(hidden_dim, hidden_dim)
        self.fc2 = nn.Linear(hidden_dim, n_actions)

    def init_hidden(self, *batch: int) -> torch.Tensor:  # [*batch, H]
        return self.fc1.weight.new_zeros(*batch, self.hidden_dim)

    def forward(self, inputs: torch.Tensor, hidden: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """One step. inputs [..., D], hidden [..., H] -> (outputs [..., A], hidden [..., H])."""
        lead = inputs.shape[:-1]
        x = F.relu(self.fc1(inputs.reshape(-1, inputs.shape[-1])))
        h = self.rnn(x, hidden.reshape(-1, self.hidden_dim))
        return self.fc2(h).view(*lead, -1), h.view(*lead, self.hidden_dim)

    def unroll(self, inputs: torch.Tensor, steps: torch.Tensor | None = None, packing: tuple | None = None
               ) -> torch.Tensor:
        """Whole episodes from a zero hidden state. inputs [B, T, N, D] -> outputs [B, T, N, A].

        The two linear layers run once over all slots and the GRU runs over the whole sequence in one
        call with the cell's own weights (:func:`ccoma.algos.fused_gru.gru_sequence`): the arithmetic
        of stepping ``self.rnn`` T times (the GRUCell walk, kept in :meth:`forward` for acting), without
        a full-size zero gradient per sliced time step (``x[:, t]``) or per-step operator and autograd
        bookkeeping. By default that call is ``torch.gru``, bit for bit the walk's on CPU; with the fused
        unroll switched on (``--fused-gru``) its numbers equal the walk's to float rounding (~1e-7).

        ``steps`` [B] (optional): how many leading slots of each episode the caller reads; it masks out
        everything the later slots (padding) feed. With the fused unroll only those slots are computed,
        packed (:func:`ccoma.algos.fused_gru.episode_packing`: fc1 and the GRU skip the padding),
        and the padding's hidden states are zero (its outputs fc2's bias); ``torch.gru`` computes every
        slot, as without ``steps``. ``packing``: :meth:`packing`'s for these inputs and steps, when the
        caller already has it (a network and its target over the same batch).
        """
        return self.head(*self.trunk_rows(inputs, steps, packing), inputs.shape)   # [B, T, N, A]

    def trunk(self, inputs: torch.Tensor, steps: torch.Tensor | None = None) -> torch.Tensor:
        """The hidden states of :meth:`unroll` (fc1 and the GRU): inputs [B, T, N, D] -> [B, T, N, H],
        the padding's zero where the fused unroll skipped it (:meth:`trunk_rows`)."""
        hs, index = self.trunk_rows(inputs, steps)
        if index is None:
            return hs
        b, t, n = inputs.shape[:3]
        return unpack_rows(hs, index, b * t * n).view(b, t, n, self.hidden_dim)

    def packing(self, inputs: torch.Tensor, steps: torch.Tensor | None
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None:
        """How :meth:`trunk_rows` packs inputs [B, T, N, D] with ``steps`` [B]: (index [P], rows [T],
        the packed inputs [P, D]) when the fused unroll runs and there is padding to skip
        (:func:`ccoma.algos.fused_gru.episode_packing`), else None (every slot is computed). A network
        and its target over the same batch pack it the same way: work it out once and pass it to both."""
        b, t, n, d = inputs.shape
        cell = self.rnn
        if steps is None or not runs_fused(inputs, cell.weight_ih, cell.weight_hh, cell.bias_ih, cell.bias_hh):
            return None
        if int(steps.min()) >= t:
            return None
        index, rows = episode_packing(steps, t, n)
        return index, rows, inputs.reshape(b * t * n, d).index_select(0, index)

    def trunk_rows(self, inputs: torch.Tensor, steps: torch.Tensor | None = None, packing: tuple | None = None
                   ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """fc1 and the GRU over inputs [B, T, N, D], as (hidden states, index). With ``steps`` and the
        fused unroll they run on the slots that matter, packed: hidden states [P, H] for the flat rows
        ``index`` [P] of the batch (:meth:`packing`, or ``packing`` when given); else [B, T, N, H]
        and None. :meth:`head` turns either into outputs, so a continual update that shares the trunk
        computes what two unrolls do."""
        b, t, n, d = inputs.shape
        cell = self.rnn
        weights = (cell.weight_ih, cell.weight_hh, cell.bias_ih, cell.bias_hh)
        packing = packing if packing is not None else self.packing(inputs, steps)
        if packing is not None:                                   # padding to skip
            index, rows, packed = packing
            x = F.relu(self.fc1(packed))                          # [P, H]
            return gru_packed(x, rows, *weights), index
        x = F.relu(self.fc1(inputs))                              # [B, T, N, H]
        seq = x.transpose(0, 1).reshape(t, b * n, self.hidden_dim)  # [T, B*N, H], time-major
        hs = gru_sequence(seq, *weights, self.training)
        return hs.view(t, b, n, self.hidden_dim).transpose(0, 1), None   # [B, T, N, H]

    def head(self, hs: torch.Tensor, index: torch.Tensor | None, shape: torch.Size) -> torch.Tensor:
        """The output layer over :meth:`trunk_rows`' hidden states -> [B, T, N, A] for a batch of
        ``shape`` [B, T, N, ...]. Packed rows are computed alone and put in place; the padding's outputs
        are the layer's over a zero hidden state, its bias (what the output layer over :meth:`trunk`
        gives, without a full-size hidden tensor)."""
        if index is None:
            return self.fc2(hs)
        b, t, n = shape[:3]
        fill = self.fc2.bias.expand(b * t * n, self.fc2.out_features)
        return torch.index_copy(fill, 0, index, self.fc2(hs)).view(b, t, n, -1)

    def trunk_params(self) -> list[nn.Parameter]:
        return [*self.fc1.parameters(), *self.rnn.parameters()]


def same_frozen_trunk(net: nn.Module, target: nn.Module) -> bool:
    """True when the network's trunk (all but the output layer: an agent's fc1 and GRU, a critic's fc1
    and fc2) does not learn and its target holds the same trunk weights: their hidden features over
    the same inputs are then the same numbers, computed once. So it is in a continual deployment that
    trains only output layers (the default trainable set)."""
    if net.training != target.training:
        return False
    mine, theirs = net.trunk_params(), target.trunk_params()
    return not any(p.requires_grad for p in mine) and all(torch.equal(a, b) for a, b in zip(mine, theirs))


class Critic(nn.Module):
    """COMA's centralised critic (the C-COMA "coordinator"): 3 layers, 128-128-A."""

    def __init__(self, input_dim: int, n_actions: int, hidden_dim: int = 128):
        super().__init__()
        self.fc1 = nn.Linear(input_dim, hidden_dim)
        self.fc2 = nn.Linear(hidden_dim, hidden_dim)
        self.fc3 = nn.Linear(hidden_dim, n_actions)

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:  # [..., D] -> [..., A]
        return self.fc3(self.features(inputs))

    def features(self, inputs: torch.Tensor) -> torch.Tensor:  # [..., D] -> [..., H]: what fc3 reads
        return F.relu(self.fc2(F.relu(self.fc1(inputs))))

    def trunk_params(self) -> list[nn.Parameter]:
        return [*self.fc1.parameters(), *self.fc2.parameters()]


def slots_used(filled: torch.Tensor) -> torch.Tensor:
    """filled [B, T+1] -> [B]: the slots of each episode a learner reads, its real steps and the slot
    after them (the final observation a truncated episode bootstraps from), at most T+1."""
    return (filled.sum(1) + 1).clamp(max=filled.shape[1])


def unpack_rows(packed: torch.Tensor, index: torch.Tensor, rows: int) -> torch.Tensor:
    """packed [P, ...], the rows ``index`` [P] of a batch of ``rows`` rows -> [rows, ...], zero elsewhere
    (the padding a packed computation skipped)."""
    return packed.new_zeros(rows, *packed.shape[1:]).index_copy_(0, index, packed)


def one_hot(actions: torch.Tensor, n_actions: int) -> torch.Tensor:
    """actions [...] int64 with -1 meaning "none" -> [..., A] float (all zeros for -1)."""
    valid = actions >= 0
    out = F.one_hot(actions.clamp(min=0), n_actions).float()
    return out * valid.unsqueeze(-1)


def shift_last_actions(actions: torch.Tensor) -> torch.Tensor:
    """actions [B, T, N] -> last actions [B, T, N]: slot t holds the action of t-1, -1 at t = 0."""
    last = torch.full_like(actions, -1)
    last[:, 1:] = actions[:, :-1]
    return last


def agent_inputs(obs: torch.Tensor, last_actions: torch.Tensor, n_actions: int,
                 extra: torch.Tensor | None = None) -> torch.Tensor:
    """[obs, last action one-hot, (extra), agent id one-hot] for every agent.

    obs [..., N, O], last_actions [..., N] int64 (-1 = none), extra [..., N, X] -> [..., N, D].
    """
    n = obs.shape[-2]
    ids = torch.eye(n, device=obs.device).expand(*obs.shape[:-1], n)
    parts = [obs, one_hot(last_actions, n_actions)]
    if extra is not None:
        parts.append(extra)
    parts.append(ids)
    return torch.cat(parts, -1)


def agent_input_dim(obs_dim: int, n_actions: int, n_agents: int, extra: int = 0) -> int:
    return obs_dim + n_actions + extra + n_agents


def masked_argmax(values: torch.Tensor, avail: torch.Tensor) -> torch.Tensor:
    """values [..., A], avail [..., A] bool -> index [...] of the best available action."""
    return values.masked_fill(~avail, float("-inf")).argmax(-1)


def safe_avail(avail: torch.Tensor) -> torch.Tensor:
    """Treat rows with no available action (padding) as all-available, so maxima stay finite."""
    return avail | ~avail.any(-1, keepdim=True)


def random_available(avail: torch.Tensor) -> torch.Tensor:
    """A uniformly random available action per row: avail [..., A] bool -> [...] int64."""
    return torch.rand(avail.shape, device=avail.device).masked_fill(~avail, -1.0).argmax(-1)
