"""The mouth painter's gradient difference loss (Mathieu, Couprie and LeCun 2016): zero for the truth, positive for a
blur of its edges, exact on a known pattern, and blind outside the mask."""

import torch

from avdiff.training.mouth_painter import gradient_difference


def test_the_gradient_difference_loss_scores_lost_edges_inside_the_mask_only():
    # teeth and gaps: a stripe pattern, and the same pattern blurred (what a squared error alone settles on)
    x = torch.arange(32.0)
    stripes = ((x // 4) % 2 * 2 - 1).expand(1, 3, 2, 32, 32).clone()  # [B, C, F, H, W] in [-1, 1]
    blurred = torch.nn.functional.avg_pool3d(stripes, (1, 1, 5), stride=1, padding=(0, 0, 2), count_include_pad=False)
    where = torch.zeros(1, 1, 2, 32, 32)
    where[..., 8:24, 8:24] = 1
    assert gradient_difference(stripes, stripes, where) == 0
    lost = gradient_difference(blurred, stripes, where)
    assert lost > 0.1
    # edges at half the contrast: each step of 2 is 1; 3 steps in the 15 pairs of a row inside the mask, none down
    # the columns: 1 * 3 * 16 / (2 * 15 * 16) = 0.1
    assert torch.isclose(gradient_difference(stripes * 0.5, stripes, where), torch.tensor(0.1))
    # outside the mask nothing counts
    worse = blurred.clone()
    worse[..., :8, :] = 0  # up to the mask's first row: the pairs across its edge do not count either
    worse[..., :, 24:] = 0
    assert torch.isclose(gradient_difference(worse, stripes, where), lost)
    assert gradient_difference(blurred, stripes, torch.zeros_like(where)) == 0
