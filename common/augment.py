"""AutoAugment (Cubuk et al. 2019) on a whole uint8 batch, each image with its own random sub-policy.

torchvision's ``transforms.v2.AutoAugment`` draws ONE sub-policy per call, so called on a batch it would give
every image of the batch the same operations; the usual pipeline therefore calls it per PIL image in
DataLoader workers. :class:`BatchAutoAugment` draws per image what torchvision draws per call (a sub-policy
uniformly, then for each of its two operations: applied with the policy's probability, the sign of a signed
magnitude with probability 1/2) and applies torchvision's own operations (``v2.AutoAugment``'s
``_apply_image_or_video_transform``, at its magnitude bins) to all the images that drew the same operation
at once: one call per distinct (operation, magnitude, sign) instead of one per image. The result for each
image is what torchvision's ``AutoAugment`` gives for that image with the same draws
(``tests/test_augment.py``); the random numbers come from torch's global generator, which checkpoints save.
"""

from __future__ import annotations

import torch
from torchvision.transforms import v2


class BatchAutoAugment:
    """``BatchAutoAugment()(x)``: x (N, C, H, W) uint8 -> the same shape, each image augmented by a sub-policy of
    ``policy`` (default: the CIFAR-10 policy). ``fill``: the value of pixels that rotations, shears and
    translations uncover (128, mid-grey, as the CCT authors' ``CIFAR10Policy``; torchvision's default is 0)."""

    def __init__(self, policy: v2.AutoAugmentPolicy = v2.AutoAugmentPolicy.CIFAR10, fill: int | None = 128,
                 interpolation: v2.InterpolationMode = v2.InterpolationMode.NEAREST):
        self.reference = v2.AutoAugment(policy, interpolation=interpolation, fill=fill)
        self.policies = self.reference._policies            # [((op, p, magnitude bin), (op, p, bin)), ...]
        self.probability = torch.tensor([[p for _, p, _ in sub] for sub in self.policies])

    def magnitude(self, op: str, bin_: int | None, height: int, width: int) -> float:
        """torchvision's magnitude of ``op`` at ``bin_`` of 10 bins (0.0 for operations without one)."""
        magnitudes, _ = self.reference._AUGMENTATION_SPACE[op]
        values = magnitudes(10, height, width)
        return float(values[bin_]) if values is not None else 0.0

    def draw(self, n: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Per image: the sub-policy (n,), whether each of its two operations applies (n, 2), and whether a signed
        magnitude is negated (n, 2)."""
        choice = torch.randint(len(self.policies), (n,))
        applied = torch.rand(n, 2) <= self.probability[choice]
        negated = torch.rand(n, 2) <= 0.5
        return choice, applied, negated

    def apply(self, x: torch.Tensor, choice: torch.Tensor, applied: torch.Tensor,
              negated: torch.Tensor) -> torch.Tensor:
        """The operations that :meth:`draw` chose, applied in the sub-policy's order, one call per group of images
        that share (operation, magnitude, sign)."""
        height, width = x.shape[-2:]
        out = x.clone()
        for stage in range(2):
            groups: dict[tuple[str, int | None, bool], list[int]] = {}
            for i in applied[:, stage].nonzero().flatten().tolist():
                op, _, bin_ = self.policies[int(choice[i])][stage]
                signed = self.reference._AUGMENTATION_SPACE[op][1]
                groups.setdefault((op, bin_, signed and bool(negated[i, stage])), []).append(i)
            for (op, bin_, negative), members in groups.items():
                m = self.magnitude(op, bin_, height, width)
                idx = torch.tensor(members, device=x.device)
                out[idx] = self.reference._apply_image_or_video_transform(
                    out[idx], op, -m if negative else m, interpolation=self.reference.interpolation,
                    fill=self.reference._fill)
        return out

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if x.dtype != torch.uint8 or x.dim() != 4:
            raise ValueError(f"BatchAutoAugment takes a uint8 batch (N, C, H, W), got {x.dtype} {tuple(x.shape)}")
        return self.apply(x, *self.draw(len(x)))
