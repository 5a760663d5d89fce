"""Every ```python block of README.md (and of any docs/sections/*.md) runs exactly as written.

Each block runs on its own (a reader copies one block at a time), in a fresh namespace and
in a temporary working directory. A block whose first line is ``# no-test`` is skipped.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FENCE = re.compile(
    r"^(?P<indent>[ \t]*)```(?P<lang>[^\n`]*)\n(?P<body>.*?)^(?P=indent)```[ \t]*$", re.M | re.S
)
OPT_OUT = "# no-test"


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
    namespace = {"__name__": "__main__", "__file__": str(path)}
    try:
        exec(compile(code, f"{path}:{line}", "exec"), namespace)
    finally:
        torch.set_default_dtype(saved[0])
        torch.set_grad_enabled(saved[1])
        torch.set_num_threads(saved[2])
        try:
            import matplotlib.pyplot as plt

            plt.close("all")
        except ImportError:
            pass
