"""The code Jinja generates for a template, with the values a template writes out checked for size.

``~`` and literals are compiled to a call of ``TemplateSandbox.checked_value`` (``render_bounds.checked``,
given the render's evaluation context to charge the size to as work): doubling a string in a loop stops
at the bound, and so does a literal holding one list many times (``[a, a, a]``), a repetition the ``*``
operator's check never sees.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from jinja2 import nodes
from jinja2.compiler import CodeGenerator, Frame


class BoundedCodeGenerator(CodeGenerator):
    """Jinja's code generator with ``~`` and literals checked: doubling a string in a loop stops at the bound,
    and so does a literal holding one list many times (``[a, a, a]``, a repetition without ``*``)."""

    def _sized(self, visit: Callable[[Any, Frame], None], node: Any, frame: Frame, what: str) -> None:
        self.write("environment.checked_value(context.eval_ctx, ")
        visit(node, frame)
        self.write(f", {what!r})")

    def visit_Concat(self, node: nodes.Concat, frame: Frame) -> None:
        self._sized(super().visit_Concat, node, frame, "operator '~'")

    def visit_List(self, node: nodes.List, frame: Frame) -> None:
        self._sized(super().visit_List, node, frame, "a list")

    def visit_Dict(self, node: nodes.Dict, frame: Frame) -> None:
        self._sized(super().visit_Dict, node, frame, "a dict")

    def visit_Tuple(self, node: nodes.Tuple, frame: Frame) -> None:
        if node.ctx == "load":  # not a loop's or a set's target names
            self._sized(super().visit_Tuple, node, frame, "a tuple")
        else:
            super().visit_Tuple(node, frame)
