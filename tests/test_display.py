"""scvi_edu.display.markdown_table: the Markdown text a chapter's table becomes."""

import numpy as np
import pandas as pd

from scvi_edu import display as D


def test_markdown_table_keeps_math_labels_formats_floats_and_blanks_nan(monkeypatch):
    shown = []
    monkeypatch.setattr(D, "display", shown.append)
    df = pd.DataFrame(
        {r"$\theta$": [0.5, np.nan], "n": [3, 4]}, index=pd.Index(["a", "b"], name="gene")
    )
    D.markdown_table(df)
    assert shown[0].data.splitlines() == [
        r"| gene | $\theta$ | n |",
        "|---|---|---|",
        "| a | 0.5 | 3 |",
        "| b |  | 4 |",
    ]
