"""The code Jinja generates for a template, with the values a template writes out checked for size.

``~`` and literals are compiled to a call of ``TemplateSandbox.checked_value`` (``render_bounds.checked``,
given the render's evaluation context to charge the size to as work): doubling a string in a loop stops
at the bound, and so does a literal holding one list many times (``[a, a, a]``), a repetition the ``*``
operator's check never sees. The operands of a comparison and the result of a slice are checked too,
which charges what they read or copy.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from jinja2 import nodes
from jinja2.compiler import CodeGenerator, Frame, operators


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

    def visit_Compare(self, node: nodes.Compare, frame: Frame) -> None:
        # Each operand is read whole (``x in big``, ``a == b``): charged as work by its size, so comparing
        # 65,536-item lists tens of thousands of times in a loop stops at the work bound.
        self.write("(")
        self._sized(self.visit, node.expr, frame, "a comparison")
        for operand in node.ops:
            self.write(f" {operators[operand.op]} ")
            self._sized(self.visit, operand.expr, frame, "a comparison")
        self.write(")")

    def visit_Getitem(self, node: nodes.Getitem, frame: Frame) -> None:
        if isinstance(node.arg, nodes.Slice):  # a copy (``a[::1]``), written by Jinja without the sandbox
            self._sized(super().visit_Getitem, node, frame, "a slice")
        else:
            super().visit_Getitem(node, frame)
