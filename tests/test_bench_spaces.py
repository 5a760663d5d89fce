"""Fairness of descentlab.bench: every search space covers all of the optimizer's hyperparameters, by one
rule; every optimizer gets the same trials, seeds and budgets."""

from __future__ import annotations

import math
from collections import Counter

import pytest
import torch

from descentlab.bench.spaces import (
    EXCLUDED,
    OPTIMIZERS,
    build_optimizer,
    optimizer_class,
    search_space,
    sobol_configurations,
    stable_seed,
)
from descentlab.bench.storage import BenchError, RunOptions, plan


@pytest.mark.parametrize("name", OPTIMIZERS)
def test_every_search_space_covers_all_hyperparameters(name):
    import inspect

    cls = optimizer_class(name)
    defaults = cls([torch.zeros(3, 2, requires_grad=True)]).defaults
    arguments = set(inspect.signature(cls.__init__).parameters) - {"self", "params"}
    space = search_space(name)
    covered = set(space.names) | set(space.fixed) | set(space.excluded)
    for key, value in defaults.items():
        names = {f"{key}[{i}]" for i in range(len(value))} if isinstance(value, tuple) else {key}
        assert names <= covered or key in space.excluded, f"{name}: {key} is not accounted for"
        if key in arguments and key not in EXCLUDED:  # every hyperparameter the constructor takes …
            for n in names:  # … is searched, or fixed with the reason that it declares no range
                assert n in space.names or "declares no numeric range" in space.fixed[n][1], (name, n)
    for key, why in space.excluded.items():
        assert key in EXCLUDED or (key not in arguments and "not a constructor argument" in why), (name, key)
    assert space.names, f"{name} has nothing to search"


@pytest.mark.parametrize("name", ["adam", "sgd", "rmsprop", "rprop", "lion", "torch.adam", "lbfgs"])
def test_every_value_of_the_rule_is_accepted_by_the_optimizer(name):
    space = search_space(name)
    for u, config in sobol_configurations(space, 16, seed=1, schedule="constant"):
        assert all(0 <= x < 1 for x in u)
        build_optimizer(name, [torch.zeros(3, requires_grad=True)], config)  # the optimizer's own checks
        for dimension in space.dimensions:
            value = config[dimension.name]
            if dimension.kind == "log-gap":
                gap = abs(value - dimension.anchor)
                assert dimension.low * (1 - 1e-9) <= gap <= dimension.high * (1 + 1e-9)


def test_the_rule_is_one_rule():
    # β near 1: the gap to 1 is searched over a decade each side; the learning rate over 3 decades
    adam = {d.name: d for d in search_space("adam").dimensions}
    assert (adam["betas[1]"].anchor, adam["betas[1]"].sign) == (1.0, -1)
    assert adam["betas[1]"].low == pytest.approx(1e-4) and adam["betas[1]"].high == pytest.approx(1e-2)
    assert adam["lr"].low == pytest.approx(1e-6) and adam["lr"].high == pytest.approx(1.0)
    sgd = {d.name: d for d in search_space("sgd").dimensions}
    assert sgd["momentum"].kind == "off-or-log-gap" and sgd["momentum"].value(0.2) == 0
    assert 0 < sgd["momentum"].value(0.75) < 0.99
    # printed as the rule states it: "on" spans [0, 0.99], not the 1e-9 margin kept from the bound
    assert sgd["momentum"].describe().startswith("0 (half the draws) or [0, 0.99] (1 − x log-uniform")
    assert sgd["nesterov"].kind == "bool"
    lion = {d.name: d for d in search_space("lion").dimensions}
    assert lion["lr"].low == pytest.approx(1e-7)  # 3 decades around Lion's own default 1e-4
    rprop = {d.name: d for d in search_space("rprop").dimensions}
    assert rprop["etas[1]"].anchor == 1.0  # η₊ > 1: the gap above 1
    lbfgs = {d.name: d for d in search_space("lbfgs").dimensions}
    assert lbfgs["history_size"].kind == "int"
    # torch's SGD declares no bound on its momentum; the reference row takes descentlab SGD's domain
    assert {d.name: d for d in search_space("torch.sgd").dimensions}["momentum"].describe() == sgd[
        "momentum"
    ].describe()


def test_sobol_configurations_are_deterministic_and_seeded():
    space = search_space("adamw")
    a = sobol_configurations(space, 4, stable_seed("digits-mlp", "adamw", 0, 0), "warmup-cosine")
    b = sobol_configurations(space, 4, stable_seed("digits-mlp", "adamw", 0, 0), "warmup-cosine")
    c = sobol_configurations(space, 4, stable_seed("digits-mlp", "adamw", 1, 0), "warmup-cosine")
    assert a == b and a != c
    assert all(config["schedule"] == "warmup-cosine" for _, config in a)
    assert stable_seed("x", 1) == stable_seed("x", 1) != stable_seed("x", 2)


def test_equal_trial_counts_seeds_and_budgets_for_every_optimizer():
    options = RunOptions.make(
        workloads=["cancer-logreg", "digits-mlp"],
        optimizers=["adam", "sgd", "heavyball"],
        studies=2,
        trials=3,
    )
    specs = plan(options, options.workloads)
    counts = Counter((s.workload, s.optimizer, s.ruleset) for s in specs)
    external = {k: v for k, v in counts.items() if k[2] == "external"}
    assert set(external.values()) == {6}
    self_counts = {k: v for k, v in counts.items() if k[2] == "self"}
    assert self_counts[("digits-mlp", "adam", "self")] == 6  # defaults + the notes' two other rates, 2 seeds
    assert self_counts[("digits-mlp", "sgd", "self")] == 2
    seeds = {}
    for s in specs:
        if s.ruleset == "external":
            seeds.setdefault((s.workload, s.study, s.trial), set()).add(s.seed)
    assert all(len(v) == 1 for v in seeds.values())  # the same data-order seed for every optimizer
    assert all(s.budget is None for s in specs)  # the workload's budget, the same for every optimizer
    assert len({s.key for s in specs}) == len(specs)


def test_closure_solvers_only_run_where_they_apply():
    options = RunOptions.make(
        workloads=["cancer-logreg", "digits-mlp"],
        optimizers=["lbfgs", "adam"],
        studies=1,
        trials=1,
        rulesets=["external"],
    )
    pairs = {(s.workload, s.optimizer) for s in plan(options, options.workloads)}
    assert ("cancer-logreg", "lbfgs") in pairs and ("digits-mlp", "lbfgs") not in pairs


@pytest.mark.parametrize(
    "kwargs,message",
    [
        ({"workloads": ["digits-mpl"]}, "unknown workload 'digits-mpl'; did you mean 'digits-mlp'"),
        ({"optimizers": ["adma"]}, "unknown optimizer 'adma'; did you mean"),
        ({"studies": 0}, "--studies must be an integer ≥ 1"),
        ({"trials": 0}, "--trials must be an integer ≥ 1"),
        ({"rulesets": ["extrenal"]}, "did you mean 'external'"),
        ({"schedule": "cosine"}, "--schedule must be one of"),
    ],
)
def test_bad_options_are_one_line_errors(kwargs, message):
    with pytest.raises(BenchError, match=message.replace("(", r"\(")) as caught:
        RunOptions.make(**kwargs)
    assert "\n" not in str(caught.value)


def test_search_space_rows_print_every_hyperparameter():
    rows = search_space("nadam").rows()
    assert [r[0] for r in rows] == search_space("nadam").names + list(search_space("nadam").fixed)
    assert all(
        math.isfinite(float(d.default))
        for d in search_space("nadam").dimensions
        if not isinstance(d.default, bool)
    )
