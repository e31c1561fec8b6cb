"""The small models of chapters 1-2, trainable with Torch.

``autoencoder``: the linear autoencoder of eqs. (4)-(28); ``vae``: the linear Gaussian VAE of
eqs. (42)-(54).
"""
