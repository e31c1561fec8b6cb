"""scvi-tools <-> scvi_edu: the same ``VAE`` weights under two sets of parameter names.

scvi_edu's ``VAE`` has scvi-tools' architecture and parameter names, so a state dict moves
between ``scvi.module.VAE`` and ``scvi_edu.module.VAE`` with two renamings:

* the layers of ``FCLayers`` are ``fc_layers.Layer 0``, ``fc_layers.Layer 1``, ... in scvi-tools
  (an ``OrderedDict``) and ``fc_layers.0``, ``fc_layers.1``, ... here (an ``nn.ModuleList``);
* the library prior of eq. (62) (``use_observed_lib_size=False``) is stored with shape
  ``(1, n_batch)`` by scvi-tools and ``(n_batch,)`` here.

Every other key and shape is the same, with one more difference: scvi-tools builds the library
encoder ``l_encoder`` even when the library size is observed (and never uses it); scvi_edu does
not (``l_encoder`` is None). ``from_scvi_tools_state_dict(..., use_observed_lib_size=True)``
leaves its weights out; loading scvi_edu's weights into such a scvi-tools ``VAE`` needs
``load_state_dict(..., strict=False)``, the missing keys being exactly ``l_encoder.*``.

The encoders match scvi-tools' only with
``var_activation="exp"`` (scvi_edu's default is softplus, see ``scvi_edu.nn.Encoder``).
``tests/test_scvi_tools_equivalence.py`` loads a scvi-tools ``VAE``'s weights into a
``scvi_edu`` ``VAE`` with these functions and checks that both compute the same numbers.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

import torch

__all__ = ["from_scvi_tools_state_dict", "to_scvi_tools_state_dict"]

LIBRARY_PRIOR = ("library_log_means", "library_log_vars")


def from_scvi_tools_state_dict(
    state_dict: Mapping[str, torch.Tensor], use_observed_lib_size: bool = False
) -> dict[str, torch.Tensor]:
    """A ``scvi.module.VAE`` state dict, renamed for ``scvi_edu.module.VAE.load_state_dict``.

    ``use_observed_lib_size``: the target ``VAE``'s setting; when True, scvi-tools' unused
    library encoder (``l_encoder.*``) is left out.
    """
    out = {}
    for key, value in state_dict.items():
        if use_observed_lib_size and key.startswith("l_encoder."):
            continue
        new = re.sub(r"\.fc_layers\.Layer (\d+)\.", r".fc_layers.\1.", key)
        out[new] = value.reshape(-1) if key in LIBRARY_PRIOR else value
    return out


def to_scvi_tools_state_dict(state_dict: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A ``scvi_edu.module.VAE`` state dict, renamed for ``scvi.module.VAE.load_state_dict``."""
    out = {}
    for key, value in state_dict.items():
        new = re.sub(r"\.fc_layers\.(\d+)\.", r".fc_layers.Layer \1.", key)
        out[new] = value.reshape(1, -1) if key in LIBRARY_PRIOR else value
    return out
