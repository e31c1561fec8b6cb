"""Shared by the chapter builders (scripts/build_chapter_0N.py): collect cells, write a notebook.

A builder adds markdown and code cells in reading order, then writes the *unexecuted* notebook
to ``tutorial/`` (or to the folder given as its first argument, to compare without
overwriting); format and execute it afterwards:

    python scripts/build_chapter_03.py
    ruff format tutorial/03_negative_binomial.ipynb
    python scripts/regenerate_notebooks.py tutorial/03_negative_binomial.ipynb
"""

import sys
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parents[1]


class NotebookBuilder:
    """Cells of one chapter; ``id_prefix`` gives stable cell ids (no diff noise on rebuild)."""

    def __init__(self, id_prefix: str):
        self.id_prefix = id_prefix
        self.cells: list = []

    def md(self, text: str) -> None:
        self.cells.append(nbformat.v4.new_markdown_cell(text.strip()))

    def code(self, text: str) -> None:
        self.cells.append(nbformat.v4.new_code_cell(text.strip()))

    def write(self, name: str) -> Path:
        nb = nbformat.v4.new_notebook()
        nb.metadata["kernelspec"] = {
            "display_name": "Python 3",
            "language": "python",
            "name": "python3",
        }
        nb.metadata["language_info"] = {"name": "python"}
        nb.cells = self.cells
        for k, cell in enumerate(nb.cells):
            cell["id"] = f"{self.id_prefix}-{k:02d}"
        out_dir = Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "tutorial"
        path = out_dir / name
        nbformat.write(nb, path)
        print(f"wrote {path} ({len(nb.cells)} cells)")
        return path
