"""Let malloc keep the training step's freed memory: one call before the first step.

A training step allocates and frees some tens of megabytes of temporaries (128 cells x 2,000
genes of float32 is 1 MB each: activations, the likelihood's terms, their gradients). Under
glibc's malloc (Linux), a block at or above the *mmap threshold* (128 KiB at start) is mapped
from the kernel and unmapped when freed, and free memory at the top of the heap beyond twice
that threshold is returned to the kernel: either way every step's temporaries come back as
fresh pages, and each 4 KiB page costs a minor page fault when first written (measured:
~1,700 faults and ~20 % more CPU per step, in a process that loaded sparse counts from a file).

glibc raises the threshold by itself when the process frees a mapped block (up to 32 MiB, and
the trim limit to twice that): a process that once held a large dense array never saw the
problem, so the speed depended on allocator state the user never sees.
``keep_freed_memory`` makes that state the same for everyone by allocating and freeing one
block just under 32 MiB (no page of it is touched). Nothing is configured (no ``mallopt``):
glibc's own adaptive rule does what a 32 MB NumPy array would have done. The effect is
process-wide and lasts: blocks under 32 MiB are then served from the heap, and up to 64 MiB of
freed memory stays with the process instead of going back to the kernel. Elsewhere (macOS,
musl) the call allocates and frees a block and changes nothing.
"""

from __future__ import annotations

import torch

__all__ = ["keep_freed_memory"]

_GLIBC_MAX_DYNAMIC_THRESHOLD = 32 * 2**20  # DEFAULT_MMAP_THRESHOLD_MAX on 64-bit glibc


def keep_freed_memory() -> None:
    """Allocate and free one untouched block just under 32 MiB (see the module docstring)."""
    block = torch.empty(_GLIBC_MAX_DYNAMIC_THRESHOLD - 2**16, dtype=torch.uint8)
    del block
