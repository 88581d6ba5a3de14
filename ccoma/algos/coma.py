"""COMA (Foerster et al. 2018) with pymarl's semantics; C-COMA is this learner deployed with part
of its parameters still learning (the harness decides which; nothing here changes for it).

The maths, in the order ``train_step`` runs it:
  policy    pi_a(u | tau_t) = (1 - eps) * softmax over available u + eps / |available|      (actor)
  critic    Q(s_t, o^a_t, u^-a_t, u_{t-1}, a)[u] for every own action u ("coordinator")
  targets   G_t = r_t + gamma (1 - term_t) [(1 - lambda) Q^-(t+1, u_{t+1}) + lambda G_{t+1}],
            G = Q^-(len, u_len) at an episode's final slot (a truncated episode bootstraps there;
            u_len is sampled from the policy since no action was taken in the final state)
  critic    one optimiser step per time step, walking backwards: (Q(t, u_t) - G_t)^2 masked
            (a harness anchor on the critic is spread over those steps: added once per update)
  baseline  b_t = sum_u pi_a(u) Q(t, u);  advantage A_t(u) = Q(t, u) - b_t
  actor     loss = -sum mask * A_t(u_t) * log pi_a(u_t) / sum mask
Acting needs only the agent network; the critic is used in training only. COMA is on-policy: the
harness hands every update the episodes produced since the previous one, and nothing older.
"""
from __future__ import annotations

import dataclasses

import torch

from ccoma.algos import fused_critic
from ccoma.algos.base import (Learner, LearnerConfig, frozen_copy, hard_update, linear_schedule, optimise, rmsprop,
                              trainable)
from ccoma.algos.networks import (Critic, RNNAgent, agent_input_dim, agent_inputs, masked_argmax, one_hot,
                                  safe_avail, same_frozen_trunk, shift_last_actions, slots_used)
from ccoma.config import doc


@dataclasses.dataclass(frozen=True)
class COMAConfig(LearnerConfig):
    """COMA / C-COMA. On-policy, as in pymarl: each update uses the latest episodes only."""

    batch_size: int = doc("Train once at least this many new episodes are in, on all of them and only them "
                          "(on-policy; pymarl COMA trains on the 8 newest episodes).", 8)
    critic_lr: float = doc("Critic (coordinator) learning rate; C-COMA paper: 0.0005.", 5e-4)
    critic_hidden_dim: int = doc("Width of the critic's two hidden layers (3 layers in all).", 128)
    td_lambda: float = doc("Lambda of the critic's TD(lambda) targets (C-COMA paper: 0.8).", 0.8)
    target_update_interval: int = doc("Copy the target critic every this many critic steps.", 200)
    epsilon_start: float = doc("Exploration floor mixed into the policy at the start.", 0.5)
    epsilon_finish: float = doc("Final exploration floor.", 0.01)
    epsilon_anneal_steps: int = doc("Env steps over which the floor anneals linearly.", 100_000)


# ---- pure pieces (tested directly) ---------------------------------------------------------

def policy(logits: torch.Tensor, avail: torch.Tensor, eps: float) -> torch.Tensor:
    """Masked softmax with an exploration floor. logits/avail [..., A] -> pi [..., A], 0 where unavailable."""
    pi = torch.softmax(logits.masked_fill(~avail, -1e10), -1) * avail
    n_avail = avail.sum(-1, keepdim=True).clamp(min=1)
    return (1.0 - eps) * pi + eps * avail / n_avail


def critic_inputs(state: torch.Tensor, obs: torch.Tensor, actions: torch.Tensor, n_actions: int) -> torch.Tensor:
    """pymarl's COMA critic input for every agent a and slot t.

    [state, o^a, every agent's action one-hot with a's own slot zeroed, last joint action one-hot, id]
    state [B, T, S], obs [B, T, N, O], actions [B, T, N] -> [B, T, N, S + O + 2*N*A + N].
    """
    b, t, n = actions.shape
    joint = one_hot(actions, n_actions).view(b, t, 1, n * n_actions).expand(-1, -1, n, -1)
    others = (1.0 - torch.eye(n, device=obs.device)).repeat_interleave(n_actions, dim=1)  # [N, N*A]
    last = one_hot(shift_last_actions(actions), n_actions).view(b, t, 1, n * n_actions).expand(-1, -1, n, -1)
    ids = torch.eye(n, device=obs.device).expand(b, t, n, n)
    return torch.cat([state.unsqueeze(2).expand(-1, -1, n, -1), obs, joint * others, last, ids], -1)


def critic_input_dim(state_dim: int, obs_dim: int, n_agents: int, n_actions: int) -> int:
    return state_dim + obs_dim + 2 * n_agents * n_actions + n_agents


def td_lambda_targets(reward: torch.Tensor, terminated: torch.Tensor, filled: torch.Tensor,
                      target_q: torch.Tensor, gamma: float, lam: float) -> torch.Tensor:
    """TD(lambda) returns, computed backwards. reward/terminated/filled [B, T]; target_q [B, T+1, N]
    (Q^- of the taken/bootstrap action at every slot) -> [B, T, N].

    At slots past an episode's last step, G is defined as Q^-(slot), so the last real step sees
    G_{len} = Q^-(len): a full bootstrap on truncation, nothing after termination.
    """
    r, d = (x.float().unsqueeze(-1) for x in (reward, terminated))            # [B, T, 1]
    live = filled.unsqueeze(-1) > 0
    steps = reward.shape[1]
    out = torch.zeros_like(target_q[:, :-1])
    # the terms that do not depend on G_{t+1}, for every slot at once (elementwise: same values)
    boot = (1.0 - lam) * target_q[:, 1:]                                      # [B, T, N]
    disc = gamma * (1.0 - d)                                                  # [B, T, 1]
    g_next = target_q[:, steps]
    for t in reversed(range(steps)):
        g = r[:, t] + disc[:, t] * (boot[:, t] + lam * g_next)
        g_next = torch.where(live[:, t], g, target_q[:, t])
        out[:, t] = g
    return out


def counterfactual_advantages(q: torch.Tensor, pi: torch.Tensor) -> torch.Tensor:
    """A(u) = Q(u) - sum_u' pi(u') Q(u'). q, pi [..., A] -> [..., A]; sum_u pi(u) A(u) == 0."""
    return q - (pi * q).sum(-1, keepdim=True)


class _CriticByHand:
    """The critic's steps with autograd, ``clip_grad_norm_(foreach=True)`` and torch's foreach RMSprop
    written out: the same operators in the same order for this MLP, so every number is the same
    (tested bit for bit against the autograd step), without the autograd graph, the engine and
    ``Optimizer.step`` around each of the ~60-120 steps of an update.

    The walk runs on flat working copies of the parameters and of RMSprop's running averages (one
    buffer each, every tensor a view into it), and the gradients are written into a third: the
    element-wise parts of the clipping and of RMSprop are then one operator each instead of one per
    tensor. Element-wise arithmetic does not depend on where an element sits in the buffer (the same
    values come out; tested bit for bit), and the norms are still taken per tensor, as
    ``clip_grad_norm_`` takes them. :meth:`sync` writes the copies back into the parameters and the
    optimiser's state (before a target copy and at the walk's end).

    layers: Linear layers with ReLU between (fc1-fc3, or fc3 alone on the frozen trunk's features),
    whose parameters are all and only those that learn; ``optimiser`` holds their RMSprop state.
    """

    def __init__(self, layers, optimiser, clip: float):
        self.n_layers, self.clip = len(layers), clip
        self.params = [p for layer in layers for p in (layer.weight, layer.bias)]
        group, states = optimiser.param_groups[0], [optimiser.state[p] for p in self.params]
        self.alpha, self.eps, self.lr = group["alpha"], group["eps"], group["lr"]
        self.steps, self.square_avgs = [s["step"] for s in states], [s["square_avg"] for s in states]
        with torch.no_grad():
            self.flat_p = torch.cat([p.reshape(-1) for p in self.params])
            self.flat_v = torch.cat([v.reshape(-1) for v in self.square_avgs])
        self.flat_g = torch.empty_like(self.flat_p)
        self.p, self.v, self.g = (_views(f, self.params) for f in (self.flat_p, self.flat_v, self.flat_g))
        self.pending = 0            # steps not yet written back
        self.stepped = False

    @torch.no_grad()
    def step(self, x, taken, target, mask, count: float):
        """x [B, N, D]; taken [B, N, 1]; target [B, N]; mask [B, N] or None (every row live). One step on
        sum((Q(u_t) - G_t)^2 over live rows) / count; returns q [B, N, A], the loss, the pre-clip norm."""
        w, g = self.p, self.g
        acts = [x.reshape(-1, x.shape[-1])]                                   # [B*N, D]: what each layer reads
        for i in range(self.n_layers):
            out = torch.addmm(w[2 * i + 1], acts[-1], w[2 * i].t())            # F.linear on [B, N, D]
            acts.append(torch.relu(out) if i < self.n_layers - 1 else out)
        q = acts[-1].view(*x.shape[:-1], -1)                                  # [B, N, A]
        err = q.gather(-1, taken).squeeze(-1) - target
        if mask is not None:
            err = err * mask
        loss = (err ** 2).sum() / count
        # backward: d loss / d err = (1 / count) * 2 err, into the taken action's column (autograd then
        # multiplies by the mask again: a no-op, err is already +-0 where the mask is 0)
        d_err = (err * 2.0) * (torch.ones(()) / count)
        d = torch.zeros_like(q).scatter_add_(-1, taken, d_err.unsqueeze(-1)).view(acts[-1].shape)
        for i in reversed(range(self.n_layers)):
            torch.mm(d.t(), acts[i], out=g[2 * i])                            # weight [out, in]
            torch.sum(d, 0, out=g[2 * i + 1])                                 # bias [out]
            if i:
                d = torch.ops.aten.threshold_backward(torch.mm(d, w[2 * i]), acts[i], 0)
        # clip_grad_norm_: the norm of the per-tensor norms; every gradient scaled by min(1, clip / norm)
        total = torch.linalg.vector_norm(torch.stack(torch._foreach_norm(g, 2.0)), 2.0)
        self.flat_g.mul_(torch.clamp(self.clip / (total + 1e-6), max=1.0))
        # RMSprop (no momentum, not centred): v <- alpha v + (1 - alpha) g^2; p <- p - lr g / (sqrt(v) + eps)
        self.flat_v.mul_(self.alpha).addcmul_(self.flat_g, self.flat_g, value=1 - self.alpha)
        self.flat_p.addcdiv_(self.flat_g, self.flat_v.sqrt().add_(self.eps), value=-self.lr)
        self.pending += 1
        self.stepped = True
        return q, loss, float(total)

    @torch.no_grad()
    def sync(self) -> None:
        """Write the working copies back: parameters, RMSprop's averages and step counts."""
        if not self.pending:
            return
        torch._foreach_copy_(self.params, self.p)
        torch._foreach_copy_(self.square_avgs, self.v)
        n, self.pending = self.pending, 0
        if all(float(s) + n <= 2 ** 24 for s in self.steps):   # float32 counts: adding n is adding 1.0 n times
            torch._foreach_add_(self.steps, float(n))
        else:
            for _ in range(n):
                torch._foreach_add_(self.steps, 1.0)

    def leave_gradients(self, optimiser) -> None:
        """As autograd's steps leave them: ``.grad`` holds the last step's clipped gradients."""
        optimiser.zero_grad(set_to_none=True)
        for p, g in zip(self.params, self.g):
            p.grad = g.clone()


def _views(flat: torch.Tensor, like: list) -> list:
    """``flat`` cut into tensors shaped as ``like``'s, in order (views, sharing its memory)."""
    out, at = [], 0
    for t in like:
        out.append(flat[at:at + t.numel()].view(t.shape))
        at += t.numel()
    return out


# ---- the learner ------------------------------------------------------------------------------

class COMALearner(Learner):
    on_policy = True
    # The critic's steps with their gradients and RMSprop written out (the same operators, same numbers
    # as autograd + clip_grad_norm_ + torch's RMSprop); False: every step through autograd (the reference).
    critic_by_hand = True

    def __init__(self, config: COMAConfig, env_info: dict, device="cpu"):
        super().__init__(config, env_info, device)
        in_dim = agent_input_dim(self.obs_dim, self.n_actions, self.n_agents)
        self.agent = RNNAgent(in_dim, self.n_actions, config.hidden_dim).to(self.device)
        c_dim = critic_input_dim(self.state_dim, self.obs_dim, self.n_agents, self.n_actions)
        self.critic = Critic(c_dim, self.n_actions, config.critic_hidden_dim).to(self.device)
        self.target_critic = frozen_copy(self.critic)
        self.agent_params = list(self.agent.parameters())
        self.critic_params = list(self.critic.parameters())
        self.agent_optimiser = rmsprop(self.agent_params, config)
        self.critic_optimiser = rmsprop(self.critic_params, config, lr=config.critic_lr)
        self.critic_steps = 0
        self.last_target_step = 0

    def networks(self):
        return {"agent": self.agent, "critic": self.critic}

    def epsilon(self, t_env: int) -> float:
        c = self.config
        return linear_schedule(c.epsilon_start, c.epsilon_finish, c.epsilon_anneal_steps, t_env)

    exploration = epsilon

    def exploration_schedule(self) -> str:
        c = self.config
        return (f"policy floor eps {c.epsilon_start:g} -> {c.epsilon_finish:g} over "
                f"{c.epsilon_anneal_steps:,} env steps")

    @torch.no_grad()
    def act(self, obs, avail, last_actions, hidden, t_env, mode="explore"):
        """obs [B, N, O], avail [B, N, A] bool, last_actions [B, N], hidden [B, N, H] -> actions [B, N]."""
        self._check_mode(mode)
        logits, hidden = self.agent(agent_inputs(obs, last_actions, self.n_actions), hidden)
        if mode == "greedy":
            return masked_argmax(logits, avail), hidden
        pi = policy(logits, avail, self.epsilon(t_env))
        actions = torch.multinomial(pi.reshape(-1, self.n_actions), 1).view(pi.shape[:-1])
        return actions, hidden

    def train_step(self, batch, t_env, episode=None):
        c = self.config
        obs, state, actions = batch["obs"], batch["state"], batch["actions"]    # [B,T+1,N,O] [B,T+1,S] [B,T+1,N]
        avail = safe_avail(batch["avail"])                                       # [B, T+1, N, A]
        reward, terminated = batch["reward"][:, :-1], batch["terminated"][:, :-1]  # [B, T]
        filled = batch["filled"]
        mask = filled[:, :-1].float()                                            # [B, T]

        # Actor forward over every slot (the final slot's policy picks the bootstrap action).
        logits = self.agent.unroll(agent_inputs(obs, shift_last_actions(actions), self.n_actions),
                                   slots_used(filled))                           # later slots: padding, masked
        pi = policy(logits, avail, self.epsilon(t_env))                          # [B, T+1, N, A]
        actions = self._with_bootstrap_actions(actions, pi.detach(), filled)

        inputs = critic_inputs(state, obs, actions, self.n_actions)              # [B, T+1, N, D]
        # continual, output layer only: the critic's frozen fc1/fc2 equal its target's, so both read
        # the same features, computed once here (and not again in each of the critic's steps)
        head_only = same_frozen_trunk(self.critic, self.target_critic)
        with torch.no_grad():
            if head_only:
                inputs = self.critic.features(inputs)                           # [B, T+1, N, H]
            target_q = (self.target_critic.fc3 if head_only else self.target_critic)(inputs)
            target_q = target_q.gather(-1, actions[..., None]).squeeze(-1)      # [B, T+1, N]
        targets = td_lambda_targets(reward, terminated, mask, target_q, c.gamma, c.td_lambda)
        q_vals, critic_info = self._train_critic(inputs, actions, targets, mask, head_only)

        # Actor: counterfactual advantage under the current policy, masked policy gradient.
        pi_now = pi[:, :-1]                                                      # [B, T, N, A]
        adv = counterfactual_advantages(q_vals, pi_now.detach())
        adv_taken = adv.gather(-1, actions[:, :-1, :, None]).squeeze(-1)         # [B, T, N]
        pi_taken = pi_now.gather(-1, actions[:, :-1, :, None]).squeeze(-1)
        mask_n = mask.unsqueeze(-1).expand_as(pi_taken)
        log_pi = torch.log(torch.where(mask_n > 0, pi_taken, torch.ones_like(pi_taken)).clamp(min=1e-10))
        actor_loss = -(adv_taken * log_pi * mask_n).sum() / mask_n.sum().clamp(min=1.0)
        agent_norm = optimise(actor_loss + self.regularization("agent"), self.agent_optimiser,
                              self.agent_params, c.grad_norm_clip)

        self.train_steps += 1
        self._count_episodes(episode)
        n, pi_now = mask_n.sum().clamp(min=1.0), pi_now.detach()
        entropy = -(pi_now * pi_now.clamp(min=1e-10).log()).sum(-1)
        return {"actor_loss": float(actor_loss.detach()), "agent_grad_norm": agent_norm, **critic_info,
                "advantage_mean": float((adv_taken * mask_n).sum() / n),
                "pi_max": float((pi_now.max(-1).values * mask_n).sum() / n),
                "entropy": float((entropy * mask_n).sum() / n), "epsilon": self.epsilon(t_env)}

    def _with_bootstrap_actions(self, actions, pi, filled):
        """Put an action sampled from the policy at each episode's final slot (slot ``len``)."""
        lengths = filled.sum(1).long().clamp(max=actions.shape[1] - 1)              # [B]
        rows = torch.arange(actions.shape[0], device=actions.device)
        final_pi = pi[rows, lengths]                                                 # [B, N, A]
        sampled = torch.multinomial(final_pi.reshape(-1, self.n_actions), 1).view(final_pi.shape[:-1])
        actions = actions.clone()
        actions[rows, lengths] = sampled
        return actions

    def _train_critic(self, inputs, actions, targets, mask, head_only: bool = False):
        """pymarl: one critic step per time step, walking backwards; returns the Q values seen.

        Each step's inputs are contiguous (time-major copy made once) and the per-step counts of
        live entries are read from the host once, not one sync per step; a step whose rows are all
        live skips the (exact, multiply-by-one) masking. ``head_only``: ``inputs`` are the frozen
        trunk's features and each step runs only the output layer.
        """
        c = self.config
        steps = targets.shape[1]
        by_time = inputs[:, :steps].transpose(0, 1).contiguous()               # [T, B, N, D]
        taken_idx = actions[:, :steps, :, None].transpose(0, 1).contiguous()    # [T, B, N, 1]
        tgt = targets.transpose(0, 1).contiguous()                              # [T, B, N]
        m_all = mask.t().unsqueeze(-1).expand(-1, -1, self.n_agents)            # [T, B, N]
        counts = m_all.sum((1, 2)).tolist()                                     # live entries per step
        by_hand = self._critic_by_hand(head_only)
        if by_hand is not None and fused_critic.runs_fused(by_time):
            return self._walk_fused(by_hand, by_time, taken_idx, tgt, m_all, counts, targets, mask)
        q_vals = torch.zeros(*targets.shape, self.n_actions, device=self.device)  # [B, T, N, A]
        full = float(m_all[0].numel())
        losses, norms = [], []
        n_steps = max(sum(1 for n in counts if n > 0), 1)  # critic steps this update: the anchor is shared by them
        for t in reversed(range(steps)):
            if counts[t] == 0.0:
                continue
            masked = m_all[t] if counts[t] != full else None
            if by_hand is not None:
                q_t, loss, norm = by_hand.step(by_time[t], taken_idx[t], tgt[t], masked, counts[t])
            else:
                q_t = (self.critic.fc3 if head_only else self.critic)(by_time[t])     # [B, N, A]
                err = q_t.gather(-1, taken_idx[t]).squeeze(-1) - tgt[t]
                if masked is not None:
                    err = err * masked
                loss = (err ** 2).sum() / counts[t]
                norm = optimise(loss + self.regularization("critic") / n_steps, self.critic_optimiser,
                                self.critic_params, c.grad_norm_clip)
                if not losses:              # the walk's first step: it may be the optimiser's first, which makes state
                    by_hand = self._critic_by_hand(head_only)
            q_vals[:, t] = q_t.detach()
            norms.append(norm)
            losses.append(loss.detach())
            self._count_critic_steps(1, by_hand)
        self._end_walk(by_hand)
        loss_total = float(torch.stack(losses).double().sum()) if losses else 0.0
        return q_vals, self._critic_info(loss_total, sum(norms), len(losses), targets, mask)

    def _count_critic_steps(self, n: int, by_hand) -> None:
        """``n`` critic steps taken: copy the target critic when its interval is due (after writing the
        by-hand walk's working copies back into the critic)."""
        self.critic_steps += n
        if self.critic_steps - self.last_target_step >= self.config.target_update_interval:
            if by_hand is not None:
                by_hand.sync()
            hard_update(self.target_critic, self.critic)
            self.last_target_step = self.critic_steps

    def _end_walk(self, by_hand) -> None:
        """The by-hand walk's copies written back, and ``.grad`` left as autograd's last step leaves it."""
        if by_hand is not None and by_hand.stepped:
            by_hand.sync()
            by_hand.leave_gradients(self.critic_optimiser)

    @staticmethod
    def _critic_info(loss_total: float, norm_total: float, n_steps: int, targets, mask) -> dict:
        """The update's critic info: mean loss and pre-clip norm over its ``n_steps`` steps, mean target."""
        n = max(n_steps, 1)
        m = mask.unsqueeze(-1).expand_as(targets)
        return {"critic_loss": loss_total / n, "critic_grad_norm": norm_total / n,
                "target_mean": float((targets * m).sum() / m.sum().clamp(min=1))}

    def _walk_fused(self, by_hand, by_time, taken_idx, tgt, m_all, counts, targets, mask):
        """:meth:`_train_critic`'s walk in C (:mod:`ccoma.algos.fused_critic`, opt-in with the fused GRU):
        the same steps in the same order, in runs that end where the target critic is copied."""
        steps, b, n = tgt.shape
        rows = b * n
        x = by_time.view(steps, rows, -1)
        taken = taken_idx.view(steps, rows)
        q = torch.zeros(steps, rows, self.n_actions)
        loss, norm = torch.zeros(steps), torch.zeros(steps)
        live = [t for t in reversed(range(steps)) if counts[t] > 0]
        args = (x, taken, tgt.view(steps, rows), m_all.reshape(steps, rows).contiguous(),
                torch.tensor(counts, dtype=torch.float32))
        at = 0
        while at < len(live):
            room = max(self.config.target_update_interval - (self.critic_steps - self.last_target_step), 1)
            run = live[at:at + room]
            fused_critic.walk(by_hand, run, *args, q, loss, norm)
            at += len(run)
            self._count_critic_steps(len(run), by_hand)
        self._end_walk(by_hand)
        return q.view(steps, b, n, -1).transpose(0, 1), self._critic_info(
            float(loss[live].double().sum()), float(norm[live].double().sum()), len(live), targets, mask)

    def _critic_by_hand(self, head_only: bool):
        """The critic's steps by hand (:class:`_CriticByHand`) on fc1-fc3, or fc3 alone on the frozen
        trunk's features; or None when a step must go through autograd: an anchor on the critic (any
        function of its parameters), another set of learning parameters, an optimiser not as
        ``rmsprop`` builds it, or one without state yet (torch's first step creates it)."""
        if not self.critic_by_hand or self._regularizers.get("critic"):
            return None
        c = self.critic
        layers = [c.fc3] if head_only else [c.fc1, c.fc2, c.fc3]
        params = [p for layer in layers for p in (layer.weight, layer.bias)]
        if [id(p) for p in trainable(self.critic_params)] != [id(p) for p in params]:
            return None
        opt = self.critic_optimiser
        if len(opt.param_groups) != 1:
            return None
        g = opt.param_groups[0]
        if (g["momentum"] or g["centered"] or g["weight_decay"] or g["maximize"] or g["differentiable"]
                or g["capturable"] or not g["foreach"] or isinstance(g["lr"], torch.Tensor)):
            return None
        if not all("square_avg" in opt.state.get(p, {}) for p in params):
            return None
        return _CriticByHand(layers, opt, self.config.grad_norm_clip)

    def fisher_losses(self, batch, t_env):
        """Per episode: the actor's negative log-likelihood of the actions taken under the behaviour
        policy at ``t_env``, and the critic's 1/2 sum_t (Q(t, u_t) - G_t)^2 (targets held fixed)."""
        obs, state, actions = batch["obs"], batch["state"], batch["actions"]
        avail, filled = safe_avail(batch["avail"]), batch["filled"]
        mask = filled[:, :-1].float()                                            # [B, T]
        logits = self.agent.unroll(agent_inputs(obs, shift_last_actions(actions), self.n_actions))
        pi = policy(logits, avail, self.epsilon(t_env))                          # [B, T+1, N, A]
        pi_taken = pi[:, :-1].gather(-1, actions[:, :-1, :, None]).squeeze(-1)   # [B, T, N]
        m = mask.unsqueeze(-1).expand_as(pi_taken)
        nll = -(torch.log(torch.where(m > 0, pi_taken, torch.ones_like(pi_taken)).clamp(min=1e-10)) * m).sum((1, 2))
        with torch.no_grad():
            acts = self._with_bootstrap_actions(actions, pi.detach(), filled)
            inputs = critic_inputs(state, obs, acts, self.n_actions)
            target_q = self.target_critic(inputs).gather(-1, acts[..., None]).squeeze(-1)
            targets = td_lambda_targets(batch["reward"][:, :-1], batch["terminated"][:, :-1], mask, target_q,
                                        self.config.gamma, self.config.td_lambda)   # [B, T, N]
        q = self.critic(inputs[:, :-1]).gather(-1, acts[:, :-1, :, None]).squeeze(-1)  # [B, T, N]
        td = (q - targets) * mask.unsqueeze(-1)
        return {"agent": nll, "critic": 0.5 * (td ** 2).sum((1, 2))}

    def _modules(self):
        return {"agent": self.agent, "critic": self.critic, "target_critic": self.target_critic}

    def _optimisers(self):
        return {"agent": self.agent_optimiser, "critic": self.critic_optimiser}

    def _counters(self):
        return {**super()._counters(), "critic_steps": self.critic_steps, "last_target_step": self.last_target_step}
