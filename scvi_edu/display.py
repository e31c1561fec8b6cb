"""Tables for the chapters: a DataFrame shown as Markdown, so that ``$...$`` in its labels renders.

Jupyter shows a DataFrame as HTML, where ``$\\theta$`` stays raw text; the same table written as
Markdown is typeset by MathJax in Jupyter, on GitHub and in the book.
"""

from __future__ import annotations

import math

import pandas as pd
from IPython.display import Markdown, display

__all__ = ["markdown_table"]


def markdown_table(df: pd.DataFrame) -> None:
    """Display ``df`` (rounded beforehand) as a Markdown table: index first, floats by ``:g``,
    NaN as an empty cell."""
    head = [df.index.name or ""] + [str(c) for c in df.columns]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for idx, row in zip(df.index, df.itertuples(index=False), strict=True):
        cells = [
            ("" if math.isnan(v) else f"{v:g}") if isinstance(v, float) else str(v) for v in row
        ]
        lines.append("| " + " | ".join([str(idx), *cells]) + " |")
    display(Markdown("\n".join(lines)))
