"""Per-request sampling over a batch of logits: greedy rows and sampled rows side by side."""

from __future__ import annotations

import torch


def sample_tensor(
    logits: torch.Tensor,
    temperatures: list[float],
    top_ps: list[float],
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """One token id per row, as a tensor on the logits' device, with no wait for the GPU
    (decode queues the next step on these tokens before the host reads them).
    Temperature 0 means greedy (argmax) for that row."""
    greedy = logits.argmax(dim=-1)
    if all(t <= 0 for t in temperatures):
        return greedy
    device = logits.device
    temps = torch.tensor([t if t > 0 else 1.0 for t in temperatures]).to(device, non_blocking=True)
    probs = torch.softmax(logits / temps[:, None], dim=-1)
    if any(p < 1.0 for p in top_ps):
        top_p = torch.tensor(top_ps, dtype=probs.dtype).to(device, non_blocking=True)
        sorted_probs, order = probs.sort(dim=-1, descending=True)
        # Keep the smallest prefix whose mass reaches top_p (the first token always stays).
        cumulative = sorted_probs.cumsum(dim=-1) - sorted_probs
        sorted_probs = sorted_probs.masked_fill(cumulative >= top_p[:, None], 0.0)
        probs = torch.zeros_like(probs).scatter_(-1, order, sorted_probs)
    drawn = torch.multinomial(probs, 1, generator=generator).view(-1)
    is_greedy = torch.tensor([t <= 0 for t in temperatures]).to(device, non_blocking=True)
    return torch.where(is_greedy, greedy, drawn)


def sample_rows(
    logits: torch.Tensor,
    temperatures: list[float],
    top_ps: list[float],
    generator: torch.Generator | None = None,
) -> list[int]:
    """One token id per row, on the host. Temperature 0 means greedy for that row."""
    return sample_tensor(logits, temperatures, top_ps, generator).tolist()
