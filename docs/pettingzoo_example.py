"""The seed tutorial's QMIX-through-PettingZoo loop, on ccoma's simulator (docs/pettingzoo.md).

    python docs/pettingzoo_example.py --map 3m --episodes 20

One recurrent Q network per agent reads the agent's observation and its previous action; actions
are epsilon-greedy over the action mask, epsilon falling linearly over the episodes; every step's
(state, joint action, team reward) goes into a list that a QMIX learner would sample from. The
tutorial drives SMAC's AEC wrapper (``StarCraft2PZEnv.env``); this is the same loop through
``ccoma.pettingzoo.parallel_env``, where all agents act at once.
"""
from __future__ import annotations

import argparse
import random

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from ccoma.pettingzoo import parallel_env


class RNNAgent(nn.Module):
    """The tutorial's agent network: fc -> GRU cell -> Q values."""

    def __init__(self, input_shape: int, hidden_dim: int, num_actions: int):
        super().__init__()
        self.hidden_dim = hidden_dim
        self.fc1 = nn.Linear(input_shape, hidden_dim)
        self.rnn = nn.GRUCell(hidden_dim, hidden_dim)
        self.fc2 = nn.Linear(hidden_dim, num_actions)

    def init_hidden(self) -> torch.Tensor:
        return self.fc1.weight.new_zeros(1, self.hidden_dim)

    def forward(self, inputs: torch.Tensor, hidden: torch.Tensor):
        h = self.rnn(F.relu(self.fc1(inputs)), hidden.reshape(-1, self.hidden_dim))
        return self.fc2(h), h


def main(map_name: str = "3m", episodes: int = 20, seed: int = 0) -> list[float]:
    """Run the loop; returns each episode's team return."""
    random.seed(seed)
    torch.manual_seed(seed)
    env = parallel_env(map_name=map_name, seed=seed)
    observations, _ = env.reset()
    nets = {}
    for agent in env.possible_agents:
        obs_size = env.observation_space(agent)["observation"].shape[0]
        nets[agent] = RNNAgent(obs_size + 1, 32, env.action_space(agent).n)
    epsilon, end_epsilon = 1.0, 0.05
    drop = (epsilon - end_epsilon) / episodes
    replay, returns = [], []
    for episode in range(episodes):
        observations, _ = env.reset()
        hidden = {a: nets[a].init_hidden() for a in env.agents}
        prev_action = {a: 0 for a in env.agents}
        epsilon = max(end_epsilon, epsilon - drop)
        total = 0.0
        while env.agents:
            actions = {}
            for agent in env.agents:
                obs = observations[agent]
                x = torch.from_numpy(np.append(obs["observation"], prev_action[agent])).float().unsqueeze(0)
                with torch.no_grad():
                    q, hidden[agent] = nets[agent](x, hidden[agent])
                mask = obs["action_mask"]
                if random.random() < epsilon:
                    actions[agent] = int(random.choice(np.flatnonzero(mask)))
                else:  # greedy among the available actions
                    actions[agent] = int(torch.where(torch.from_numpy(mask).bool(), q[0], -torch.inf).argmax())
            state = env.state()
            observations, rewards, terminations, truncations, infos = env.step(actions)
            reward = next(iter(rewards.values()))           # the team reward, the same for every agent
            replay.append((state, actions, reward))
            total += reward
            prev_action.update(actions)
        won = next(iter(infos.values()))["battle_won"]
        print(f"episode {episode}: return {total:.2f}, {'won' if won else 'not won'}, "
              f"{len(replay)} transitions, epsilon {epsilon:.2f}")
        returns.append(total)
    env.close()
    return returns


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--map", default="3m")
    ap.add_argument("--episodes", type=int, default=20)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    main(a.map, a.episodes, a.seed)
