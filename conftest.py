"""Environment for every test and every notebook kernel (nbval starts kernels from this process).

The same values are used by ``scripts/regenerate_notebooks.py``, so the stored outputs of the
notebooks are produced under exactly the conditions CI compares them in. Thread counts are only
defaults: ``OMP_NUM_THREADS=2 pytest --nbval`` must pass too (printed numbers are rounded to digits
that do not depend on the BLAS thread count).
"""

import os

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

for _key, _value in NOTEBOOK_ENV.items():
    os.environ.setdefault(_key, _value)
