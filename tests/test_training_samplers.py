"""Balanced batches (StratifiedBatchSampler, class_weights) and curriculum sampling (pacing functions)."""

from __future__ import annotations

import math
import pickle
from collections import Counter

import pytest
import torch
from scipy import stats
from torch.utils.data import BatchSampler, DataLoader, TensorDataset, WeightedRandomSampler

from descentlab.training import (
    PACINGS,
    Competence,
    Constant,
    CurriculumSampler,
    Exponential,
    Linear,
    Quadratic,
    Root,
    Step,
    StratifiedBatchSampler,
    class_weights,
    loss_difficulty,
)


def _imbalanced_labels():
    """10 classes with 60, 45, 33, … 10 examples, shuffled."""
    counts = [max(10, int(60 * 0.75**c)) for c in range(10)]
    labels = torch.cat([torch.full((n,), c) for c, n in enumerate(counts)])
    return labels[torch.randperm(len(labels), generator=torch.Generator().manual_seed(0))], counts


# -- stratified batches -----------------------------------------------------------------------------
def test_every_batch_holds_exactly_b_over_c_of_each_class():
    labels, _ = _imbalanced_labels()
    sampler = StratifiedBatchSampler(labels, 20, generator=torch.Generator().manual_seed(0))
    batches = list(sampler)
    assert len(batches) == len(sampler) == 60 // 2
    for batch in batches:
        assert len(batch) == 20
        assert Counter(labels[batch].tolist()) == {c: 2 for c in range(10)}


def test_no_example_of_a_class_repeats_before_its_pool_is_used_up():
    labels, counts = _imbalanced_labels()
    sampler = StratifiedBatchSampler(labels, 20, generator=torch.Generator().manual_seed(1))
    stream = {c: [] for c in range(10)}
    for batch in sampler:
        for i in batch:
            stream[int(labels[i])].append(i)
    for c, seen in stream.items():
        pool = set(torch.nonzero(labels == c).flatten().tolist())
        for start in range(0, len(seen), counts[c]):
            block = seen[start : start + counts[c]]
            assert len(set(block)) == len(block) and set(block) <= pool  # a permutation (or its start)
        assert set(seen) == pool  # every example at least once per pass
    # the minority class (10 examples, 2 per batch, 30 batches) went round 6 times, reshuffled each time
    assert len(stream[9]) == 60 and stream[9][:10] != stream[9][10:20]


def test_c_must_divide_b():
    labels, _ = _imbalanced_labels()
    with pytest.raises(
        ValueError,
        match=r"batch_size must be a multiple of the number of classes C = 10.*got "
        r"batch_size=25",
    ):
        StratifiedBatchSampler(labels, 25)
    with pytest.raises(ValueError, match="per_class must add up to batch_size=20"):
        StratifiedBatchSampler(labels, 20, per_class=3)
    with pytest.raises(ValueError, match="per_class must give a count for each class"):
        StratifiedBatchSampler(labels, 20, per_class={0: 20})


def test_per_class_mapping_drop_last_and_a_dataloader():
    labels = torch.tensor([0] * 7 + [1] * 3)
    sampler = StratifiedBatchSampler(
        labels, 3, per_class={0: 2, 1: 1}, drop_last=True, generator=torch.Generator().manual_seed(0)
    )
    assert len(sampler) == 3  # max(⌊7/2⌋, ⌊3/1⌋)
    assert len(StratifiedBatchSampler(labels, 3, per_class={0: 2, 1: 1}, drop_last=False)) == 4  # ⌈7/2⌉
    data = TensorDataset(torch.arange(10.0), labels)
    for _, y in DataLoader(data, batch_sampler=sampler):
        assert sorted(y.tolist()) == [0, 0, 1]


def test_the_same_generator_seed_gives_the_same_batches_and_none_uses_the_global_rng():
    labels, _ = _imbalanced_labels()
    a = list(StratifiedBatchSampler(labels, 20, generator=torch.Generator().manual_seed(3)))
    b = list(StratifiedBatchSampler(labels, 20, generator=torch.Generator().manual_seed(3)))
    assert a == b
    torch.manual_seed(7)
    c = list(StratifiedBatchSampler(labels, 20))
    torch.manual_seed(7)
    assert list(StratifiedBatchSampler(labels, 20)) == c


def test_class_weights_and_weighted_sampling_balances_only_on_average():
    labels, counts = _imbalanced_labels()
    w = class_weights(labels)
    n = len(labels)
    assert torch.allclose(w, torch.tensor([n / (10 * c) for c in counts]))
    assert torch.allclose(
        torch.bincount(labels, weights=w[labels].double()), torch.full((10,), n / 10).double()
    )
    draws = WeightedRandomSampler(w[labels].double(), 20 * 200, generator=torch.Generator().manual_seed(0))
    batches = list(BatchSampler(draws, 20, drop_last=True))
    missing = sum(len(set(labels[b].tolist())) < 10 for b in batches) / len(batches)
    assert missing > 0.5  # (1 − 1/10)^20 ≈ 12 % per class: most batches of 20 miss some class
    assert class_weights(torch.tensor([0, 0, 2])).tolist() == [0.75, 0.0, 1.5]  # class 1 absent


# -- curriculum -----------------------------------------------------------------------------------
def test_constant_pacing_one_samples_uniformly_chi_square():
    n, b, steps = 50, 10, 2000
    difficulty = torch.randn(n, generator=torch.Generator().manual_seed(0))
    sampler = CurriculumSampler(
        difficulty, Constant(1.0), b, steps, generator=torch.Generator().manual_seed(1)
    )
    counts = torch.bincount(torch.tensor([i for batch in sampler for i in batch]), minlength=n)
    assert counts.sum() == b * steps
    assert stats.chisquare(counts.numpy()).pvalue > 0.01
    half = CurriculumSampler(difficulty, Constant(0.5), b, steps, generator=torch.Generator().manual_seed(1))
    counts = torch.bincount(torch.tensor([i for batch in half for i in batch]), minlength=n)
    assert stats.chisquare(counts.numpy()).pvalue < 1e-6  # the test can tell
    easiest = set(torch.argsort(difficulty)[:25].tolist())
    assert set(torch.nonzero(counts).flatten().tolist()) == easiest


@pytest.mark.parametrize(
    "pacing",
    [
        Linear(0.2, 100),
        Root(0.2, 100),
        Quadratic(0.2, 100),
        Step(0.2, 100, steps=2),
        Exponential(0.2, 1.5, 10),
        Competence(0.2, 100),
    ],
)
def test_every_batch_comes_from_the_easiest_fraction_the_pacing_allows(pacing):
    n, b = 200, 8
    difficulty = torch.rand(n, generator=torch.Generator().manual_seed(0))
    order = torch.argsort(difficulty)
    sampler = CurriculumSampler(difficulty, pacing, b, 150, generator=torch.Generator().manual_seed(0))
    for t, batch in enumerate(sampler):
        allowed = set(order[: max(b, math.ceil(pacing(t) * n))].tolist())
        assert len(set(batch)) == b and set(batch) <= allowed
        if t == 0:
            assert set(batch) <= set(order[: math.ceil(0.2 * n)].tolist())


def test_pacing_functions_against_hand_computed_values():
    assert (
        Linear(0.2, 100)(0) == 0.2
        and Linear(0.2, 100)(50) == pytest.approx(0.6)
        and Linear(0.2, 100)(500) == 1
    )
    assert Root(0.2, 100)(25) == pytest.approx(0.2 + 0.8 * 0.5)
    assert Quadratic(0.2, 100)(50) == pytest.approx(0.2 + 0.8 * 0.25)
    assert [Step(0.2, 100, steps=2)(t) for t in (0, 49, 50, 99, 100)] == pytest.approx(
        [0.2, 0.2, 0.6, 0.6, 1.0]
    )
    assert Step(0.5, 10)(9) == 0.5 and Step(0.5, 10)(10) == 1.0  # Hacohen & Weinshall's single step
    assert [Exponential(0.1, 2.0, 10)(t) for t in (0, 9, 10, 25, 39, 40)] == pytest.approx(
        [0.1, 0.1, 0.2, 0.4, 0.8, 1.0]
    )
    assert Constant(0.3)(12345) == 0.3


@pytest.mark.parametrize("c0, T", [(0.01, 1000), (0.1, 50)])
def test_competence_against_platanios_et_al(c0, T):
    for t in (0, 1, T // 3, T // 2, T - 1, T, 2 * T):
        sqrt = min(1.0, math.sqrt(t * (1 - c0**2) / T + c0**2))  # their competence-sqrt
        linear = min(1.0, t * (1 - c0) / T + c0)  # their linear competence
        assert Competence(c0, T)(t) == pytest.approx(sqrt, rel=1e-12)
        assert Competence(c0, T, p=1)(t) == pytest.approx(linear, rel=1e-12)


def test_pacings_are_picklable_values_and_check_their_arguments():
    for name, cls in PACINGS.items():
        pacing = cls()
        assert pickle.loads(pickle.dumps(pacing)) == pacing, name
        assert name.lower() in repr(pacing).lower()
    with pytest.raises(ValueError, match=r"start must be in \(0, 1\], got 0"):
        Linear(0.0, 10)
    with pytest.raises(ValueError, match=r"ramp must be an integer in \[1, inf\], got 0"):
        Root(0.5, 0)
    with pytest.raises(ValueError, match=r"gamma must be in \(1, inf\], got 1"):
        Exponential(0.1, 1.0)
    with pytest.raises(ValueError, match=r"t must be an integer in \[0, inf\], got -1"):
        Linear()(-1)


def test_loss_difficulty_and_anti_curriculum():
    torch.manual_seed(0)
    model = torch.nn.Linear(4, 3)
    x, y = torch.randn(30, 4), torch.randint(0, 3, (30,))
    per_example = lambda out, t: torch.nn.functional.cross_entropy(out, t, reduction="none")  # noqa: E731
    model.train()
    scores = loss_difficulty(model, per_example, (x, y), batch_size=7)
    assert model.training
    with torch.no_grad():
        assert torch.allclose(scores, per_example(model(x), y))
    hardest = set(torch.argsort(scores, descending=True)[:6].tolist())
    anti = CurriculumSampler(-scores, Constant(0.2), 6, 3, generator=torch.Generator().manual_seed(0))
    assert all(set(batch) == hardest for batch in anti)
    with pytest.raises(ValueError, match="one loss per example"):
        loss_difficulty(model, torch.nn.functional.cross_entropy, (x, y))


def test_curriculum_bad_arguments():
    d = torch.rand(10)
    with pytest.raises(ValueError, match=r"batch_size must be an integer in \[1, 10\], got 11"):
        CurriculumSampler(d, Constant(), 11, 5)
    with pytest.raises(ValueError, match="pacing must be callable"):
        CurriculumSampler(d, 0.5, 2, 5)
    with pytest.raises(ValueError, match="difficulty must be a non-empty 1-D tensor of finite scores"):
        CurriculumSampler(torch.tensor([0.0, float("nan")]), Constant(), 1, 5)
    bad = CurriculumSampler(d, lambda t: 1.5, 2, 5)
    with pytest.raises(ValueError, match=r"pacing\(0\) must be in \(0, 1\], got 1.5"):
        list(bad)
