"""Re-execute the tutorial notebooks in place, under the environment CI compares them in.

    python scripts/regenerate_notebooks.py                 # every chapter
    python scripts/regenerate_notebooks.py tutorial/02_vae.ipynb

Run it whenever code a notebook uses changes, then commit the notebooks with their outputs.
"""

import os
import sys
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from conftest import NOTEBOOK_ENV  # noqa: E402


def execute(path: Path, timeout: int = 600) -> float:
    """Execute one notebook top to bottom in its own folder and write it back in place."""
    nb = nbformat.read(path, as_version=4)
    start = time.perf_counter()
    NotebookClient(
        nb,
        timeout=timeout,
        kernel_name="python3",
        resources={"metadata": {"path": str(path.parent)}},
    ).execute()
    nbformat.write(nb, path)
    return time.perf_counter() - start


def main(argv: list[str]) -> None:
    for key, value in NOTEBOOK_ENV.items():
        os.environ[key] = value  # exactly CI's values, not the caller's
    paths = [Path(a) for a in argv] or sorted((ROOT / "tutorial").glob("*.ipynb"))
    for path in paths:
        print(f"{path.name}: {execute(path.resolve()):.1f} s", flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
