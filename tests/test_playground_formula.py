"""The whitelist formula parser: the notes' function typed as text, refusals, limits, and fuzzing."""

from __future__ import annotations

import math
import time

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from descentlab.landscapes import two_minima
from descentlab.playground import formula as F
from descentlab.playground.formula import FormulaError, formula_function, parse_formula

NOTES_001 = "-2*exp(-((x-1)^2+y^2)/.2) - 6*exp(-((x+1)^2+y^2)/.2) + x^2 + y^2"


def test_the_notes_two_minima_formula_typed_as_text_is_the_built_in_landscape():
    typed = formula_function(NOTES_001)
    built = two_minima()
    g = torch.Generator().manual_seed(0)
    points = (torch.rand(200, 2, generator=g, dtype=torch.float64) - 0.5) * 4
    a = points.clone().requires_grad_(True)
    b = points.clone().requires_grad_(True)
    va, vb = typed(a), built(b)
    torch.testing.assert_close(va, vb, rtol=1e-13, atol=1e-13)
    (ga,) = torch.autograd.grad(va.sum(), a)
    (gb,) = torch.autograd.grad(vb.sum(), b)
    torch.testing.assert_close(ga, gb, rtol=1e-12, atol=1e-12)


def test_unicode_operators_and_precedence():
    f = formula_function("2 × x − 3·y + 2^3^2 - -x")
    w = torch.tensor([1.0, 2.0], dtype=torch.float64)
    assert float(f(w)) == 2 - 6 + 2**9 + 1


@pytest.mark.parametrize(
    "text,message",
    [
        ("__import__('os').system('ls')", "unexpected '_'"),
        ("x.real", "unexpected '.'"),
        ("x; y", "unexpected ';'"),
        ("lambda x: x", "unexpected ':'"),
        ("lambda", "unknown name 'lambda'"),
        ("9**9**9", "expected a number"),
        ("open(x)", "unknown name 'open'"),
        ("x +", "found the end"),
        ("(x", "expected ')'"),
        ("x y", "unexpected 'y'"),
        ("", "non-empty"),
        ("x" + "+x" * 200, "characters long"),
        ("x+" * 120 + "x", "more than 200 parts"),
        ("-" * 100 + "x", "nests deeper"),
    ],
)
def test_refused_with_a_reason(text, message):
    with pytest.raises(FormulaError, match=message.replace("(", r"\(").replace(")", r"\)")):
        parse_formula(text)


def test_five_thousand_nested_parentheses_are_refused_quickly():
    began = time.perf_counter()
    with pytest.raises(FormulaError):
        parse_formula("(" * 5000 + "x" + ")" * 5000)
    assert time.perf_counter() - began < 1.0
    with pytest.raises(FormulaError, match="nests deeper than 32"):
        parse_formula("(" * 140 + "x" + ")" * 140)


def test_overflow_gives_inf_without_hanging():
    began = time.perf_counter()
    value = float(formula_function("9^9^9")(torch.zeros(2, dtype=torch.float64)))
    assert value == math.inf and time.perf_counter() - began < 1.0
    assert math.isnan(float(formula_function("log(x) * 0 + sqrt(-1)")(torch.zeros(2, dtype=torch.float64))))


def test_the_module_never_uses_eval_compile_or_ast(monkeypatch):
    import ast
    import builtins
    import re

    source = open(F.__file__, encoding="utf-8").read()
    body = source.split('"""', 2)[2]  # after the module docstring, which names them
    assert not re.search(r"(?<![.\w])(eval|compile|exec)\(", body) and "import ast" not in body

    def refuse(*args, **kwargs):
        raise AssertionError("the formula parser called eval/exec/compile/ast")

    for name in ("eval", "exec", "compile"):
        monkeypatch.setattr(builtins, name, refuse)
    monkeypatch.setattr(ast, "parse", refuse)
    assert float(formula_function(NOTES_001)(torch.zeros(2, dtype=torch.float64))) < 0


ATOMS = st.sampled_from(["x", "y", "1", "2.5", ".2", "3e-2"])


def _expressions():
    return st.recursive(
        ATOMS,
        lambda inner: st.one_of(
            st.tuples(inner, st.sampled_from(["+", "-", "*", "/", "^"]), inner)
            .map(lambda t: f"({t[0]}{t[1]}{t[2]})"),
            st.tuples(st.sampled_from(sorted(F.FUNCTIONS)), inner).map(lambda t: f"{t[0]}({t[1]})"),
            inner.map(lambda e: f"-{e}"),
        ),
        max_leaves=12,
    )


@settings(max_examples=150, deadline=None)
@given(_expressions())
def test_fuzz_valid_formulas_parse_and_evaluate(text):
    try:
        fn = formula_function(text)
    except FormulaError as error:  # only the documented limits may refuse a grammatical formula
        assert "nests deeper" in str(error) or "parts" in str(error)
        return
    value = fn(torch.tensor([[0.3, -0.7], [1.1, 0.2]], dtype=torch.float64))
    assert value.shape == (2,)


ALPHABET = list("xy0123456789.+-*/^()eE ;_'\"[]{}:,=abcdefghijklmnopqrstuvwz×−")


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.sampled_from(ALPHABET), max_size=80))
def test_fuzz_any_text_parses_or_is_refused_with_a_formula_error(text):
    began = time.perf_counter()
    try:
        fn = formula_function(text)
    except FormulaError:
        return
    finally:
        assert time.perf_counter() - began < 1.0
    value = fn(torch.tensor([0.5, 0.25], dtype=torch.float64))
    assert value.numel() == 1
