"""A griffe extension for the API pages: Sphinx roles in docstrings shown as inline code.

The docstrings cross-reference with Sphinx roles (``:class:`~descentlab.optim.Adam```), which
mkdocstrings does not interpret; without this they would render as ``:class:`` followed by code. A
role becomes inline code of its target — the last component with a leading ``~``, as Sphinx shows
it. Only the API pages' copy of each docstring changes: the source is not touched.
"""

from __future__ import annotations

import re

import griffe

ROLE = re.compile(r":(?:py:)?(?:class|func|meth|mod|attr|data|obj|exc|const|ref):`(~?)([^`]+)`")


def plain(text: str) -> str:
    """``:class:`~a.b.C``` → ```C```, ``:func:`a.b``` → ```a.b``` (inline code)."""
    return ROLE.sub(lambda m: f"`{m.group(2).rsplit('.', 1)[-1] if m.group(1) else m.group(2)}`", text)


class SphinxRoles(griffe.Extension):
    def on_object(self, *, obj: griffe.Object, **kwargs) -> None:
        if obj.docstring is not None:
            obj.docstring.value = plain(obj.docstring.value)
