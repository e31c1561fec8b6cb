"""Environment for every test and every notebook kernel (nbval starts kernels from this process).

The values are ``NOTEBOOK_ENV`` of ``scripts/notebooks.py``, which also executes the notebooks
when they are rebuilt, so their stored outputs are produced under exactly the conditions CI
compares them in. Thread counts are only defaults: ``OMP_NUM_THREADS=2 pytest --nbval`` must
pass too (printed numbers are rounded to digits that do not depend on the BLAS thread count).
"""

import importlib.util
import os
from pathlib import Path

_spec = importlib.util.spec_from_file_location(
    "_notebooks", Path(__file__).parent / "scripts" / "notebooks.py"
)
_notebooks = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_notebooks)

for _key, _value in _notebooks.NOTEBOOK_ENV.items():
    os.environ.setdefault(_key, _value)
