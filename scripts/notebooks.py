"""The one workflow for the chapters: a py:percent source is the truth, the notebook is built.

Each chapter ``tutorial/NN_name.ipynb`` is generated from ``tutorial/sources/NN_name.py``
(jupytext's percent format: ``# %%`` starts a code cell, ``# %% [markdown]`` a markdown cell,
``# %% tags=["remove-cell"]`` a cell the book hides). Edit the source, never the notebook:

    ruff format tutorial/sources && ruff check tutorial/sources
    python scripts/notebooks.py build                      # every chapter: write, then execute
    python scripts/notebooks.py build 03_negative_binomial  # one chapter
    python scripts/notebooks.py build --no-execute          # write the cells only
    python scripts/notebooks.py check                       # as tests/test_notebook_sources.py

``build`` writes the notebook's cells from the source (cell ids ``chNN-00``, ``chNN-01``, ...,
so a rebuild gives no diff noise), then executes it top to bottom in ``tutorial/`` under
``NOTEBOOK_ENV`` (the same environment ``pytest --nbval`` gives the kernels through the root
``conftest.py``), so the stored outputs are those CI compares against. Commit both files.
To turn an existing notebook into a source: ``python scripts/notebooks.py source NAME``.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TUTORIAL = ROOT / "tutorial"
SOURCES = TUTORIAL / "sources"

# The kernels' environment, for CI, a class and this script alike (read by the root conftest.py).
NOTEBOOK_ENV = {
    "OMP_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
    "OPENBLAS_NUM_THREADS": "1",
    "NUMBA_NUM_THREADS": "1",
    "PYTHONHASHSEED": "0",
    "PYTHONWARNINGS": "ignore",
    "TQDM_DISABLE": "1",
    "MPLBACKEND": "module://matplotlib_inline.backend_inline",
}

KERNELSPEC = {"display_name": "Python 3", "language": "python", "name": "python3"}
# Only cell tags travel between source and notebook; the source carries no notebook metadata.
JUPYTEXT_FILTERS = {"notebook_metadata_filter": "-all", "cell_metadata_filter": "tags,-all"}


def names() -> list[str]:
    """Chapter names (``01_autoencoder``, ...), from the sources, in file-name order."""
    return sorted(p.stem for p in SOURCES.glob("[0-9][0-9]_*.py"))


def cells_from_source(name: str) -> list:
    """The notebook cells of chapter ``name`` as its source defines them (no outputs)."""
    import jupytext

    nb = jupytext.read(SOURCES / f"{name}.py", fmt="py:percent")
    for k, cell in enumerate(nb.cells):
        cell.id = f"ch{name[:2]}-{k:02d}"
        cell.metadata = {"tags": cell.metadata["tags"]} if cell.metadata.get("tags") else {}
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
    return nb.cells


def cell_key(cell) -> tuple:
    """What must agree between a notebook cell and its source: id, type, text, tags."""
    return (cell.get("id"), cell.cell_type, cell.source, list(cell.metadata.get("tags", [])))


def differences(name: str) -> list[str]:
    """How ``tutorial/<name>.ipynb`` differs from its source (empty: they agree)."""
    import nbformat

    path = TUTORIAL / f"{name}.ipynb"
    if not path.is_file():
        return [f"{path.name} is missing: run python scripts/notebooks.py build {name}"]
    built = [cell_key(c) for c in cells_from_source(name)]
    stored = [cell_key(c) for c in nbformat.read(path, as_version=4).cells]
    problems = []
    if len(built) != len(stored):
        problems.append(f"{path.name}: {len(stored)} cells, the source has {len(built)}")
    for k, (b, s) in enumerate(zip(built, stored, strict=False)):
        if b != s:
            what = ["id", "cell type", "text", "tags"][next(i for i in range(4) if b[i] != s[i])]
            problems.append(f"{path.name}: cell {k} ({b[0]}) differs from its source in its {what}")
    return problems


def write_notebook(name: str) -> Path:
    """Write ``tutorial/<name>.ipynb`` from its source (cells only; execute it afterwards)."""
    import nbformat

    nb = nbformat.v4.new_notebook()
    nb.metadata = {"kernelspec": KERNELSPEC, "language_info": {"name": "python"}}
    nb.cells = cells_from_source(name)
    path = TUTORIAL / f"{name}.ipynb"
    nbformat.write(nb, path)
    return path


def execute(path: Path, timeout: int = 600) -> float:
    """Execute one notebook top to bottom in its own folder and write it back in place."""
    import nbformat
    from nbclient import NotebookClient

    for key, value in NOTEBOOK_ENV.items():
        os.environ[key] = value  # exactly CI's values, not the caller's
    nb = nbformat.read(path, as_version=4)
    start = time.perf_counter()
    NotebookClient(
        nb,
        timeout=timeout,
        kernel_name="python3",
        record_timing=False,  # no timestamps in the committed notebook
        resources={"metadata": {"path": str(path.parent)}},
    ).execute()
    nbformat.write(nb, path)
    return time.perf_counter() - start


def write_source(name: str) -> Path:
    """Turn an existing ``tutorial/<name>.ipynb`` into ``tutorial/sources/<name>.py``."""
    import jupytext

    nb = jupytext.read(TUTORIAL / f"{name}.ipynb")
    nb.metadata = {"jupytext": JUPYTEXT_FILTERS}
    path = SOURCES / f"{name}.py"
    jupytext.write(nb, path, fmt="py:percent")
    return path


def _chosen(given: list[str]) -> list[str]:
    known = names()
    chosen = [Path(g).stem for g in given] or known
    unknown = [c for c in chosen if c not in known]
    if unknown:
        sys.exit(f"no source tutorial/sources/<name>.py for {unknown}; chapters: {known}")
    return chosen


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    build = sub.add_parser("build", help="write notebooks from their sources, then execute them")
    build.add_argument("names", nargs="*", help="chapters (default: all)")
    build.add_argument("--no-execute", action="store_true", help="write the cells only")
    check = sub.add_parser("check", help="fail if a notebook differs from its source")
    check.add_argument("names", nargs="*")
    source = sub.add_parser("source", help="write the source of an existing notebook")
    source.add_argument("names", nargs="+")
    args = parser.parse_args(argv)

    if args.command == "source":
        for name in args.names:
            print(f"wrote {write_source(Path(name).stem).relative_to(ROOT)}")
        return 0
    chosen = _chosen(args.names)
    if args.command == "check":
        problems = [p for name in chosen for p in differences(name)]
        print("\n".join(problems) or f"{len(chosen)} notebooks agree with their sources")
        return 1 if problems else 0
    for name in chosen:
        path = write_notebook(name)
        if args.no_execute:
            print(f"wrote {path.relative_to(ROOT)} (not executed)")
        else:
            print(f"{path.relative_to(ROOT)}: executed in {execute(path):.1f} s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
