"""Every chapter notebook is its source, ``tutorial/sources/NN_name.py``, built and executed.

The source (jupytext percent format) is what authors edit and ruff checks; the notebook carries
the executed outputs that nbval compares and readers see. ``python scripts/notebooks.py build``
writes one from the other; these tests fail when they have drifted apart.
"""

import importlib.util
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("notebooks", ROOT / "scripts" / "notebooks.py")
notebooks = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(notebooks)

NAMES = notebooks.names()


def test_every_notebook_has_a_source_and_every_source_a_notebook():
    stored = sorted(p.stem for p in (ROOT / "tutorial").glob("*.ipynb"))
    assert stored == NAMES, "each tutorial/NN_name.ipynb needs tutorial/sources/NN_name.py"
    assert len(NAMES) >= 6


@pytest.mark.parametrize("name", NAMES)
def test_notebook_cells_equal_their_source(name):
    problems = notebooks.differences(name)
    assert not problems, "\n".join(problems) + "\nrun: python scripts/notebooks.py build " + name


@pytest.mark.parametrize("name", NAMES)
def test_cell_ids_are_stable(name):
    cells = nbformat.read(ROOT / "tutorial" / f"{name}.ipynb", as_version=4).cells
    assert [c.id for c in cells] == [f"ch{name[:2]}-{k:02d}" for k in range(len(cells))]


def test_a_drifted_notebook_is_reported(tmp_path, monkeypatch):
    """The check itself can fail: edit one cell of a copy and it is named."""
    name = NAMES[0]
    nb = nbformat.read(ROOT / "tutorial" / f"{name}.ipynb", as_version=4)
    nb.cells[1].source += "\nprint('edited in the notebook, not in the source')"
    monkeypatch.setattr(notebooks, "TUTORIAL", tmp_path)
    nbformat.write(nb, tmp_path / f"{name}.ipynb")
    assert notebooks.differences(name) == [
        f"{name}.ipynb: cell 1 (ch{name[:2]}-01) differs from its source in its text"
    ]
