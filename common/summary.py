"""Layer tables: each top-level layer's output shape and trainable parameters, beside the paper's."""

from __future__ import annotations

import torch
from torch import nn

Row = tuple[str, tuple[int, ...], int, "int | None"]


def count_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters() if p.requires_grad)


@torch.no_grad()
def layer_table(model: nn.Module, example: torch.Tensor, paper: dict[str, int] | None = None) -> list[Row]:
    """(layer, output shape for one example, our trainable parameters, the paper's or None) for every
    direct child of ``model``, in definition order, from one forward pass of ``example`` (batch 1)
    in eval mode. A child that the forward pass does not call gets the shape ``()``."""
    shapes: dict[str, tuple[int, ...]] = {}
    hooks = [m.register_forward_hook(lambda mod, inp, out, name=name: shapes.__setitem__(name, tuple(out.shape[1:])))
             for name, m in model.named_children()]
    was_training = model.training
    model.eval()
    try:
        model(example.to(next(model.parameters()).device))
    finally:
        model.train(was_training)
        for h in hooks:
            h.remove()
    paper = paper or {}
    return [(name, shapes.get(name, ()), count_parameters(m), paper.get(name))
            for name, m in model.named_children()]


def format_layer_table(rows: list[Row], paper_total: int | None = None, width: int = 10) -> str:
    """The rows of :func:`layer_table` as aligned text, with a total line."""
    lines = [f"{'layer':<{width}}{'output':<16}{'params':>12}{'paper':>12}"]
    for name, shape, ours, paper in rows:
        lines.append(f"{name:<{width}}{'x'.join(map(str, shape)):<16}{ours:>12,}"
                     f"{'' if paper is None else f'{paper:,}':>12}")
    total = sum(r[2] for r in rows)
    lines.append(f"{'total':<{width + 16}}{total:>12,}{'' if paper_total is None else f'{paper_total:,}':>12}")
    return "\n".join(lines)
