"""A journey's steps laid out as a flow diagram, for ``ops_journey_diagram.html`` to draw as SVG.

The layout is a single column of step boxes in file order (the order people read and write
them in). An arrow to the step right below is a short straight line; any other arrow (a branch
case, a ``wait_for`` exit, a split variant, a ``goto`` backwards) leaves the box on the right,
runs down or up its own lane and comes back in on the right of its target, so no two arrows
share a line. Split holdouts and exits end at an "exit" box under the last step.

Only geometry and codes are computed here; every word is chosen by the template (a box says what its
step does as the page's step table does, ``ops_labels.step_detail``), so the diagram follows the
reader's language like the rest of the page.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from engine.language.journey_model import Condition, Journey, Step

BOX_X = 16
BOX_W = 300
BOX_H = 80  # a line of words, the step id under it, two lines of figures
GAP = 34
TOP = 16
LABEL_ROOM = 170  # the horizontal run of a side arrow carries its label
LANE_W = 14
LABEL_CHARS = 26
END = "(end)"  # the box every way out of the journey ends at (not a step id: those are identifiers)


@dataclass
class Node:
    id: str
    kind: str  # a step kind, or "end" for the end box
    x: int
    y: int
    w: int = BOX_W
    h: int = BOX_H


@dataclass
class Edge:
    source: str
    target: str
    kind: str  # next | exit | case | otherwise | variant | holdout | event | timeout
    text: str  # data shown with the kind's word: a condition, a variant and its share, an event, an exit reason
    path: str  # SVG path data
    label_x: int
    label_y: int
    side: bool  # drawn on the right in a lane (else straight down)
    when: Condition | None = None  # a case's condition, or the condition on a wait's event


@dataclass
class Diagram:
    width: int
    height: int
    nodes: list[Node] = field(default_factory=list)
    edges: list[Edge] = field(default_factory=list)


def _short(kind: str, text: str) -> str:
    # An exit reason and a variant's name are looked up and worded by the template: kept whole.
    if kind in ("exit", "variant") or len(text) <= LABEL_CHARS:
        return text
    return text[: LABEL_CHARS - 1] + "…"


def _exits(journey: Journey, index: int) -> list[tuple[str, str, str, Condition | None]]:
    """(target id, edge kind, text, condition) for each way out of step ``index``, "next" and "exit"
    resolved; the condition of a branch case or of the event a wait takes, for the page to word."""
    steps = journey.steps
    step: Step = steps[index]
    following = steps[index + 1].id if index + 1 < len(steps) else END

    def to(target: str) -> str:
        return following if target == "next" else target

    if step.exit is not None:
        return [(END, "exit", step.exit.reason, None)]
    if step.branch is not None:
        out: list[tuple[str, str, str, Condition | None]] = [
            (to(c.goto), "case", c.when.describe(), c.when) for c in step.branch.cases]
        return [*out, (to(step.branch.otherwise), "otherwise", "", None)]
    if step.split is not None:
        out = [(to(v.goto), "variant", f"{v.name} {v.percent:g}%", None) for v in step.split.variants]
        if step.split.holdout:
            out.append((END, "holdout", f"{step.split.holdout:g}%", None))
        return out
    if step.wait_for is not None:
        w = step.wait_for
        when = f" · {w.when.describe()}" if w.when is not None else ""
        return [(to(w.on_event), "event", f"{w.event}{when}", w.when), (to(w.on_timeout), "timeout", w.timeout, None)]
    return [(to(step.next or "next"), "next", "", None)]


def layout(journey: Journey) -> Diagram:
    steps = journey.steps
    index = {s.id: i for i, s in enumerate(steps)}
    index[END] = len(steps)
    nodes = [Node(s.id, s.kind, BOX_X, TOP + i * (BOX_H + GAP)) for i, s in enumerate(steps)]
    nodes.append(Node(END, "end", BOX_X + BOX_W // 4, TOP + len(steps) * (BOX_H + GAP), BOX_W // 2, 34))
    right = BOX_X + BOX_W
    edges: list[Edge] = []
    lane = 0
    for i, step in enumerate(steps):
        outs = _exits(journey, i)
        side_k = 0
        for target, kind, text, cond in outs:
            j = index.get(target, len(steps))
            src, dst = nodes[i], nodes[j]
            down = j == i + 1 and not any(e.side is False and e.source == step.id for e in edges)
            if down:
                cx = src.x + src.w // 2
                path = f"M{cx},{src.y + src.h} L{cx},{dst.y}"
                edges.append(Edge(step.id, target, kind, _short(kind, text), path, cx + 6, src.y + src.h + GAP // 2 + 4,
                                  False, cond))
                continue
            y0 = src.y + 14 + side_k * 13
            y1 = dst.y + dst.h // 2 + (lane % 3) * 4 - 4
            lx = right + LABEL_ROOM + lane * LANE_W
            end_x = dst.x + dst.w
            path = f"M{right},{y0} H{lx} V{y1} H{end_x}"
            edges.append(Edge(step.id, target, kind, _short(kind, text), path, right + 4, y0 - 3, True, cond))
            lane += 1
            side_k += 1
    width = right + LABEL_ROOM + max(lane, 1) * LANE_W + 16
    height = nodes[-1].y + nodes[-1].h + TOP
    return Diagram(width, height, nodes, edges)
