"""common.augment: AutoAugment per image on a whole batch equals torchvision's, image by image."""

import pytest
import torch

from common.augment import BatchAutoAugment


def _one_by_one(aa: BatchAutoAugment, x, choice, applied, negated):
    """torchvision's AutoAugment.forward for each image, with the given draws instead of its own."""
    out = []
    for i in range(len(x)):
        img = x[i]
        for stage in range(2):
            if applied[i, stage]:
                op, _, bin_ = aa.policies[int(choice[i])][stage]
                m = aa.magnitude(op, bin_, *x.shape[-2:])
                if aa.reference._AUGMENTATION_SPACE[op][1] and negated[i, stage]:
                    m = -m
                img = aa.reference._apply_image_or_video_transform(img, op, m, interpolation=aa.reference.interpolation,
                                                                   fill=aa.reference._fill)
        out.append(img)
    return torch.stack(out)


def test_every_sub_policy_on_a_batch_equals_one_image_at_a_time():
    aa = BatchAutoAugment()
    g = torch.Generator().manual_seed(0)
    n = 4 * len(aa.policies)
    x = torch.randint(0, 256, (n, 3, 32, 32), dtype=torch.uint8, generator=g)
    choice = torch.arange(n) % len(aa.policies)                       # every sub-policy, 4 images each
    applied = torch.rand(n, 2, generator=g) < 0.8
    negated = torch.rand(n, 2, generator=g) < 0.5
    batched = aa.apply(x, choice, applied, negated)
    assert torch.equal(batched, _one_by_one(aa, x, choice, applied, negated))
    assert not torch.equal(batched, x)


def test_draws_follow_the_policy_and_the_global_seed():
    aa = BatchAutoAugment()
    torch.manual_seed(0)
    choice, applied, negated = aa.draw(20_000)
    assert torch.bincount(choice, minlength=25).min() > 600                     # uniform over 25 sub-policies
    rate = applied.float().mean(0)
    expected = aa.probability[choice].mean(0)
    assert torch.allclose(rate, expected, atol=0.02)
    x = torch.randint(0, 256, (8, 3, 32, 32), dtype=torch.uint8)
    torch.manual_seed(1)
    a = aa(x)
    torch.manual_seed(1)
    assert torch.equal(a, aa(x))


def test_bad_input():
    with pytest.raises(ValueError, match="uint8"):
        BatchAutoAugment()(torch.rand(2, 3, 32, 32))
