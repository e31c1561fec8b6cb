"""scvi-edu: a compact, readable Torch scVI and the small models of the tutorial's chapters.

Where to look (tutorial equation numbers in brackets):

* ``distributions`` — log-pmfs of Poisson, NB, ZINB and the KL terms (55)-(59), (63)-(66);
* ``module`` — ``VAE``: inference -> generative -> loss, the corrected ELBO (60)-(69);
* ``train`` — the training loop (70) and its ``TrainConfig``; ``model`` — ``SCVI``, the user
  API on AnnData; ``posterior``, ``differential`` — the queries of a trained model;
* ``context`` — ``seeded(seed)`` (reproducible without touching the global Torch RNG) and
  ``evaluating(module)`` (eval mode, no gradients), used by training and every query;
* ``simulate`` — samples the generative process (55) with known truth.
"""

from scvi_edu.data import CountData
from scvi_edu.model import SCVI
from scvi_edu.module import VAE
from scvi_edu.simulate import simulate

__all__ = ["SCVI", "VAE", "CountData", "simulate"]
__version__ = "0.1.0"
