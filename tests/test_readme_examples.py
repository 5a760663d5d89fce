"""Every ```python block of README.md (and of any docs/sections/*.md) runs exactly as written,
and prints what its annotations say.

Each block runs on its own (a reader copies one block at a time), in a fresh namespace and
in a temporary working directory. A block whose first line is ``# no-test`` is skipped.

Printed outputs are checked where a block annotates them. The convention: a comment that
starts with ``# -> `` is the expected output of the ``print(...)`` call on its line, or, on a
line of its own, of the ``print(...)`` statement that ends just above it (for outputs too long
to share a line; consecutive ``# -> `` lines are joined by newlines)::

    print(round(2 / 3, 4))              # -> 0.6667
    print(sorted(opt.state[w]))
    # -> ['momentum_buffer:0', 'momentum_buffer:1']

The expected text is compared with what that call printed (all its calls, joined by newlines,
when it runs in a loop) by doctest's ``OutputChecker`` with ``ELLIPSIS`` and
``NORMALIZE_WHITESPACE``: ``...`` matches anything, for timings and last digits that vary with
the machine. Any other comment (``# the loss after 100 steps``) is prose and is not checked.
"""

from __future__ import annotations

import ast
import builtins
import doctest
import io
import re
import sys
import tokenize
from collections import defaultdict
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FENCE = re.compile(
    r"^(?P<indent>[ \t]*)```(?P<lang>[^\n`]*)\n(?P<body>.*?)^(?P=indent)```[ \t]*$", re.M | re.S
)
OPT_OUT = "# no-test"
EXPECTED = re.compile(r"#\s*->\s?(?P<want>.*)$")  # an output annotation, `# -> text`
CHECKER_FLAGS = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE


def python_blocks(path: Path) -> list[tuple[int, str]]:
    """(line number, code) of each ```python fence in ``path``."""
    text = path.read_text(encoding="utf-8")
    blocks = []
    for match in FENCE.finditer(text):
        if match.group("lang").strip().lower() not in ("python", "py", "python3"):
            continue
        indent = match.group("indent")
        lines = [line[len(indent):] if line.startswith(indent) else line
                 for line in match.group("body").splitlines()]
        line_no = text.count("\n", 0, match.start()) + 1
        blocks.append((line_no, "\n".join(lines) + "\n"))
    return blocks


def expected_outputs(code: str) -> dict[tuple[int, int], str]:
    """{(first, last) line of a ``print(...)`` statement: its annotated output} of a block."""
    comments = {}  # line number -> (annotation text, whether the comment has the line to itself)
    for token in tokenize.generate_tokens(io.StringIO(code).readline):
        match = EXPECTED.match(token.string) if token.type == tokenize.COMMENT else None
        if match:
            own_line = not token.line[:token.start[1]].strip()
            comments[token.start[0]] = (match.group("want").rstrip(), own_line)
    prints = sorted((node.lineno, node.end_lineno) for node in ast.walk(ast.parse(code))
              if isinstance(node, ast.Expr) and isinstance(node.value, ast.Call)
              and isinstance(node.value.func, ast.Name) and node.value.func.id == "print")
    wanted = {}
    for first, last in prints:
        trailing = [comments.pop(n)[0] for n in range(first, last + 1)
                    if n in comments and not comments[n][1]]
        below, n = [], last + 1
        while n in comments and comments[n][1]:
            below.append(comments.pop(n)[0])
            n += 1
        if trailing or below:
            wanted[(first, last)] = "\n".join(trailing + below)
    if comments:
        raise AssertionError(f"`# -> ` annotations on lines {sorted(comments)} follow no print(...) call")
    return wanted


def recording_print(filename: str, printed: dict[int, list[str]]):
    """A ``print`` that writes as usual and records (line of the call in ``filename``, text)."""

    def print(*args, sep=" ", end="\n", file=None, flush=False):  # noqa: A001
        caller = sys._getframe(1)
        if file is None and caller.f_code.co_filename == filename:
            text = io.StringIO()
            builtins.print(*args, sep=sep, end="", file=text)
            printed[caller.f_lineno].append(text.getvalue())
        builtins.print(*args, sep=sep, end=end, file=file, flush=flush)

    return print


def output_mismatches(code: str, printed: dict[int, list[str]], offset: int = 0) -> list[str]:
    """One message per annotated ``print`` whose recorded output does not match its annotation.

    ``offset`` is added to the block's line numbers in the messages (the fence's line in its file).
    """
    checker, problems = doctest.OutputChecker(), []
    for (first, last), want in expected_outputs(code).items():
        got = "\n".join(text for n in range(first, last + 1) for text in printed.get(n, []))
        if not checker.check_output(want + "\n", got + "\n", CHECKER_FLAGS):
            problems.append(f"line {first + offset} printed\n    {got!r}\nbut its comment says\n    {want!r}")
    return problems


def run_block(code: str, filename: str, offset: int = 0, namespace: dict | None = None) -> None:
    """Run ``code``; raise AssertionError naming each annotated output that differs."""
    expected_outputs(code)  # a stray annotation fails before any work
    printed: dict[int, list[str]] = defaultdict(list)
    namespace = {"__name__": "__main__", "__file__": filename, **(namespace or {}),
                 "print": recording_print(filename, printed)}
    exec(compile(code, filename, "exec"), namespace)
    problems = output_mismatches(code, printed, offset)
    if problems:
        raise AssertionError(f"{filename}: " + "\n".join(problems))


def _documents() -> list[Path]:
    docs = sorted((ROOT / "docs" / "sections").glob("*.md"))
    readme = ROOT / "README.md"
    return ([readme] if readme.exists() else []) + docs


EXAMPLES = [
    pytest.param(path, line, code, id=f"{path.relative_to(ROOT)}:{line}")
    for path in _documents()
    for line, code in python_blocks(path)
]


def test_the_extractor_finds_and_dedents_blocks(tmp_path):
    doc = tmp_path / "x.md"
    doc.write_text(
        "text\n```python\nx = 1\n```\n```bash\nls\n```\n- item\n\n  ```python\n  y = 2\n  ```\n"
        "```python\n# no-test\nboom\n```\n",
        encoding="utf-8",
    )
    blocks = python_blocks(doc)
    assert [code for _, code in blocks] == ["x = 1\n", "y = 2\n", "# no-test\nboom\n"]
    assert [line for line, _ in blocks] == [2, 10, 13]


def test_annotated_outputs_are_checked(tmp_path):
    doc = tmp_path / "x.md"
    doc.write_text(
        "```python\n"
        "x = 2  # a prose comment, not checked\n"
        "print(x + 1)            # -> 3\n"
        "print(x / 3)            # -> 0.666...\n"
        "for i in range(3):\n"
        "    print(i, i * i)     # -> 0 0 1 1 2 4\n"
        "print('the loss after 100 steps')   # what it is, not what it prints\n"
        "print([x] * 2,\n"
        "      'long')\n"
        "# -> [2, 2] long\n"
        "```\n"
        "```python\n"
        "print(2 + 2)  # -> 5\n"
        "print(sorted({'b', 'a'}))\n"
        "# -> ['a', 'b', ...]\n"
        "```\n",
        encoding="utf-8",
    )
    (_, good), (line, bad) = python_blocks(doc)
    assert list(expected_outputs(good).values()) == ["3", "0.666...", "0 0 1 1 2 4", "[2, 2] long"]
    run_block(good, "good.md")
    with pytest.raises(AssertionError) as error:
        run_block(bad, "bad.md", offset=line)
    assert "line 13 printed\n    '4'\nbut its comment says\n    '5'" in str(error.value)
    assert "['a', 'b']" in str(error.value)          # the ellipsis needs at least the ", "
    with pytest.raises(AssertionError, match="follow no print"):
        expected_outputs("x = 1  # -> 1\n")


def test_the_readme_has_the_drop_in_and_custom_chain_examples():
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    assert text.index("make demo") < text.index("make test") < text.index("## Optimizers")
    codes = [code for _, code in python_blocks(ROOT / "README.md")]
    assert any("from_chain" in code for code in codes)
    assert any("from descentlab.optim import Adam" in code for code in codes)


@pytest.mark.timeout(300)
@pytest.mark.parametrize("path,line,code", EXAMPLES)
def test_example_runs_as_written(path, line, code, tmp_path, monkeypatch):
    first_line = code.lstrip().splitlines()[0].strip() if code.strip() else ""
    if first_line.lower().startswith(OPT_OUT):
        pytest.skip("opted out with '# no-test'")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MPLBACKEND", "Agg")
    import torch

    # the block runs in this process: restore the global torch settings it may change
    saved = torch.get_default_dtype(), torch.is_grad_enabled(), torch.get_num_threads()
    torch.manual_seed(0)
    torch.set_num_threads(1)  # examples are small; threads only contend on a busy 2-core CI machine
    try:
        run_block(code, f"{path}:{line}", offset=line, namespace={"__file__": str(path)})
    finally:
        torch.set_default_dtype(saved[0])
        torch.set_grad_enabled(saved[1])
        torch.set_num_threads(saved[2])
        try:
            import matplotlib.pyplot as plt

            plt.close("all")
        except ImportError:
            pass
