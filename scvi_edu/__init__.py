"""scvi-edu: a compact, readable Torch scVI and the small models of the tutorial's chapters."""

__version__ = "0.1.0"
