"""scvi_edu.interop without scvi-tools: the renamings, their inverse, and the library prior.

The comparison with scvi-tools itself is tests/test_scvi_tools_equivalence.py (needs scvi).
"""

import numpy as np
import torch

from scvi_edu.interop import from_scvi_tools_state_dict, to_scvi_tools_state_dict
from scvi_edu.module import VAE


def latent_library_vae():
    return VAE(
        12,
        n_batch=3,
        n_hidden=8,
        n_latent=2,
        n_layers=2,
        use_observed_lib_size=False,
        library_log_means=np.array([1.0, 2.0, 3.0]),
        library_log_vars=np.array([0.5, 0.25, 1.0]),
    )


def test_keys_take_scvi_tools_names_and_come_back():
    state = latent_library_vae().state_dict()
    tools = to_scvi_tools_state_dict(state)
    # scvi-tools' FCLayers names its layers "Layer 0", "Layer 1", ... (an OrderedDict)
    assert "z_encoder.encoder.fc_layers.Layer 1.0.weight" in tools
    assert "decoder.px_decoder.fc_layers.Layer 0.1.running_var" in tools
    assert not any(".fc_layers.0." in k or ".fc_layers.1." in k for k in tools)
    assert tools["library_log_means"].shape == (1, 3)
    back = from_scvi_tools_state_dict(tools)
    assert back.keys() == state.keys()
    assert all(torch.equal(back[k], state[k]) for k in state)


def test_observed_library_leaves_out_scvi_tools_unused_library_encoder():
    observed = VAE(12, n_batch=3, n_hidden=8, n_latent=2, n_layers=2)
    tools = to_scvi_tools_state_dict(latent_library_vae().state_dict())
    del tools["library_log_means"], tools["library_log_vars"]  # only with a latent library
    kept = from_scvi_tools_state_dict(tools, use_observed_lib_size=True)
    assert not any(k.startswith("l_encoder.") for k in kept)
    observed.load_state_dict(kept)  # strict: exactly scvi_edu's keys
