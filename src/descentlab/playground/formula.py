"""Landscape formulas typed by a user, read by a whitelist parser: nothing is ever evaluated as Python.

The grammar is small and fixed — numbers, the variables ``x`` and ``y``, ``+ - * / ^`` (``×`` and ``−``
too), parentheses, and the functions ``exp log sin cos tanh sqrt abs``::

    expr   := term (('+' | '-') term)*
    term   := unary (('*' | '/') unary)*
    unary  := ('+' | '-') unary | power
    power  := atom ('^' unary)?            (right-associative: 2^3^2 = 2^9)
    atom   := number | 'x' | 'y' | name '(' expr ')' | '(' expr ')'

A hand-written tokenizer and recursive-descent parser build a tree of tuples, checked against limits
before any arithmetic: at most :data:`MAX_LENGTH` characters, :data:`MAX_NODES` nodes and nesting depth
:data:`MAX_DEPTH` (counted while parsing, so 5,000 nested parentheses are refused at depth 33, not by a
``RecursionError``). ``eval``, ``compile`` and :mod:`ast` are never used. The tree becomes a torch
function of ``w = (..., 2)``; overflow gives ``inf`` (``9^9^9``), which the lab treats as divergence.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable

import torch
from torch import Tensor

__all__ = [
    "FormulaError",
    "parse_formula",
    "formula_function",
    "MAX_LENGTH",
    "MAX_NODES",
    "MAX_DEPTH",
    "FUNCTIONS",
]

MAX_LENGTH = 300
MAX_NODES = 200
MAX_DEPTH = 32

FUNCTIONS: dict[str, Callable[[Tensor], Tensor]] = {
    "exp": torch.exp,
    "log": torch.log,
    "sin": torch.sin,
    "cos": torch.cos,
    "tanh": torch.tanh,
    "sqrt": torch.sqrt,
    "abs": torch.abs,
}
_TOKEN = re.compile(
    r"\s*(?:(?P<number>(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)|(?P<name>[a-z]+)|(?P<op>[-+*/^()×−·]))"
)
_SAME = {"×": "*", "·": "*", "−": "-"}


class FormulaError(ValueError):
    """A formula the parser refuses; the message says where and why, in one line."""


def _tokens(text: str) -> list[tuple[str, str, int]]:
    if not isinstance(text, str) or not text.strip():
        raise FormulaError("formula must be a non-empty text such as 'x^2 + 10*y^2'")
    if len(text) > MAX_LENGTH:
        raise FormulaError(f"formula is {len(text)} characters long; at most {MAX_LENGTH} are allowed")
    tokens, at = [], 0
    while at < len(text):
        if text[at:].strip() == "":
            break
        match = _TOKEN.match(text, at)
        if match is None:
            bad = text[at:].lstrip()[:1]
            raise FormulaError(
                f"formula: unexpected {bad!r} at column {len(text) - len(text[at:].lstrip()) + 1}; "
                "allowed: numbers, x, y, + - * / ^, ( ), " + ", ".join(FUNCTIONS)
            )
        kind = match.lastgroup
        value = match.group(kind)
        tokens.append((kind, _SAME.get(value, value), match.start(kind) + 1))
        at = match.end()
    tokens.append(("end", "", len(text) + 1))
    return tokens


class _Parser:
    def __init__(self, text: str) -> None:
        self.tokens = _tokens(text)
        self.at = 0
        self.nodes = 0
        self.depth = 0

    def peek(self) -> tuple[str, str, int]:
        return self.tokens[self.at]

    def take(self) -> tuple[str, str, int]:
        token = self.tokens[self.at]
        self.at += 1
        return token

    def node(self, *parts):
        self.nodes += 1
        if self.nodes > MAX_NODES:
            raise FormulaError(f"formula has more than {MAX_NODES} parts; simplify it")
        return parts

    def enter(self, column: int) -> None:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise FormulaError(f"formula nests deeper than {MAX_DEPTH} levels (at column {column})")

    def expect(self, value: str) -> None:
        kind, got, column = self.take()
        if got != value:
            shown = "the end" if kind == "end" else repr(got)
            raise FormulaError(f"formula: expected {value!r} at column {column}, found {shown}")

    def expr(self):
        self.enter(self.peek()[2])
        left = self.term()
        while self.peek()[1] in ("+", "-") and self.peek()[0] == "op":
            op = self.take()[1]
            left = self.node(op, left, self.term())
        self.depth -= 1
        return left

    def term(self):
        left = self.unary()
        while self.peek()[1] in ("*", "/") and self.peek()[0] == "op":
            op = self.take()[1]
            left = self.node(op, left, self.unary())
        return left

    def unary(self):
        kind, value, column = self.peek()
        if kind == "op" and value in ("+", "-"):
            self.take()
            self.enter(column)
            operand = self.unary()
            self.depth -= 1
            return operand if value == "+" else self.node("neg", operand)
        return self.power()

    def power(self):
        base = self.atom()
        kind, value, column = self.peek()
        if kind == "op" and value == "^":
            self.take()
            self.enter(column)
            exponent = self.unary()
            self.depth -= 1
            return self.node("^", base, exponent)
        return base

    def atom(self):
        kind, value, column = self.take()
        if kind == "number":
            return self.node("num", float(value))
        if kind == "name":
            if value in ("x", "y"):
                return self.node("var", value)
            if value in FUNCTIONS:
                self.expect("(")
                inner = self.expr()
                self.expect(")")
                return self.node("call", value, inner)
            raise FormulaError(
                f"formula: unknown name {value!r} at column {column}; use x, y or one of "
                + ", ".join(FUNCTIONS)
            )
        if kind == "op" and value == "(":
            inner = self.expr()
            self.expect(")")
            return inner
        shown = "the end" if kind == "end" else repr(value)
        raise FormulaError(
            f"formula: expected a number, x, y, a function or '(' at column {column}, found {shown}"
        )


def parse_formula(text: str) -> tuple:
    """The formula's tree (nested tuples), or a :class:`FormulaError`."""
    parser = _Parser(text)
    tree = parser.expr()
    kind, value, column = parser.peek()
    if kind != "end":
        raise FormulaError(f"formula: unexpected {value!r} at column {column}")
    return tree


def _evaluate(tree: tuple, x: Tensor, y: Tensor) -> Tensor:
    kind = tree[0]
    if kind == "num":
        return torch.full_like(x, tree[1])
    if kind == "var":
        return x if tree[1] == "x" else y
    if kind == "neg":
        return -_evaluate(tree[1], x, y)
    if kind == "call":
        return FUNCTIONS[tree[1]](_evaluate(tree[2], x, y))
    left, right = _evaluate(tree[1], x, y), _evaluate(tree[2], x, y)
    if kind == "+":
        return left + right
    if kind == "-":
        return left - right
    if kind == "*":
        return left * right
    if kind == "/":
        return left / right
    return torch.pow(left, right)


def formula_function(text: str) -> Callable[[Tensor], Tensor]:
    """``f(w)`` for ``w`` of shape ``(..., 2)`` computed by the parsed formula (torch operations only)."""
    tree = parse_formula(text)

    def fn(w: Tensor) -> Tensor:
        return _evaluate(tree, w[..., 0], w[..., 1])

    fn.formula = text  # type: ignore[attr-defined]
    return fn


def constant_value(text: str) -> float:
    """The formula's value at (0, 0), a float (``inf`` when it overflows): for tests and messages."""
    value = formula_function(text)(torch.zeros(2, dtype=torch.float64))
    return float(value) if value.numel() == 1 else math.nan
