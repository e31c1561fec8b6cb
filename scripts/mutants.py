"""The tutorial's mistakes, written as the code a student copying the printed formula would get.

Each entry is one text substitution in one file (``find`` must occur exactly once). The mutation
harness (``scripts/mutation_test.py``) applies each to a copy of the repository and requires the
suite to fail with a message naming ``equation`` (as ``eq. (NN)`` or ``ledger (NN)``).
"""

MISTAKES = [
    {
        "name": "tutorial-69-kl-added",
        "equation": "(69)",
        "path": "scvi_edu/module.py",
        "find": "elbo = -(reconstruction_loss + kl_z + kl_l)\n        return",
        "replace": "elbo = -reconstruction_loss + kl_z + kl_l\n        return",
        "description": "(69) adds the KL terms to the expected log-likelihood instead of "
        "subtracting them",
    },
    {
        "name": "tutorial-69-kl-added-in-loss",
        "equation": "(69)",
        "path": "scvi_edu/module.py",
        "find": "loss = torch.mean(reconstruction_loss + kl_weight * kl_z + kl_l)",
        "replace": "loss = torch.mean(reconstruction_loss - kl_weight * kl_z - kl_l)",
        "description": "(69)/(70): maximising reconstruction + KL, i.e. minimising rec - KL",
    },
    {
        "name": "tutorial-67-kl-product",
        "equation": "(67)",
        "path": "scvi_edu/module.py",
        "find": "elbo = -(reconstruction_loss + kl_z + kl_l)\n        return",
        "replace": "elbo = -(reconstruction_loss + kl_z * kl_l)\n        return",
        "description": "(67) writes the KL of the product q(z)q(l) as the product of the KLs",
    },
    {
        "name": "tutorial-fig3-softmax-without-exp",
        "equation": "Fig. 3",
        "path": "scvi_edu/nn.py",
        "find": "px_scale = torch.softmax(o, dim=-1)",
        "replace": "px_scale = o / torch.exp(o).sum(dim=-1, keepdim=True)",
        "description": "Fig. 3: rho_g = o_g / sum_j exp(o_j) (the exp of the numerator dropped)",
    },
    {
        "name": "tutorial-58-x-log-x",
        "equation": "(58)",
        "path": "scvi_edu/distributions.py",
        "find": "+ x * (_log_floor(mu) - torch.log(theta + mu))",
        "replace": "+ x * (_log_floor(x) - torch.log(theta + mu))",
        "description": "(58)/(59)/(69): x log(x / (theta + l rho)) instead of "
        "x log(l rho / (theta + l rho))",
    },
    {
        "name": "tutorial-58-zero-inflation-flipped",
        "equation": "(58)",
        "path": "scvi_edu/distributions.py",
        "find": "    nb_zero = -theta * torch.log1p(mu / theta)  # log NB(0 | mu, theta)\n",
        "replace": "    zi_logits = -zi_logits\n"
        "    nb_zero = -theta * torch.log1p(mu / theta)  # log NB(0 | mu, theta)\n",
        "description": "(55)/(58): P(X=0) = P(Y=0)P(h=0) + P(h=1) — the mixture weights of the "
        "zero case swapped (sigmoid read as P(keep) where it is P(dropout))",
    },
    {
        "name": "tutorial-58-x-log-x-training",
        "equation": "(58)",
        "path": "scvi_edu/fast_likelihood.py",
        "find": "log1p_inv_ratio = torch.div(theta, mu_floor).log1p_()",
        "replace": "log1p_inv_ratio = torch.div(theta, x.clamp(min=floor)).log1p_()",
        "description": "(58)/(69) in the training likelihood: x log(x / (theta + l rho))",
    },
    {
        "name": "tutorial-58-zero-inflation-flipped-training",
        "equation": "(58)",
        "path": "scvi_edu/fast_likelihood.py",
        "find": "            zi_logits = zi_logits.expand(shape)\n",
        "replace": "            zi_logits = -zi_logits.expand(shape)\n",
        "description": "(55)/(58) in the training likelihood: sigmoid(zi_logits) read as P(keep)",
    },
    {
        "name": "tutorial-58-softplus-misbracketed",
        "equation": "(58)",
        "path": "scvi_edu/distributions.py",
        "find": "case_zero = F.softplus(nb_zero - zi_logits) - F.softplus(-zi_logits)",
        "replace": "case_zero = F.softplus(nb_zero - zi_logits - F.softplus(-zi_logits))",
        "description": "(58)/(59): exp(S(-f + theta log(...) - S(-f))) — the second softplus "
        "inside the first",
    },
    {
        "name": "tutorial-62-variance-square-outside-sum",
        "equation": "(62)",
        "path": "scvi_edu/data.py",
        "find": "np.bincount(batch_codes, weights=(log_total - means[batch_codes]) ** 2, "
        "minlength=n_batch)",
        "replace": "np.bincount(batch_codes, weights=(log_total - means[batch_codes]), "
        "minlength=n_batch) ** 2",
        "description": "(62): sigma_b^2 = (sum_i (log L_i - mu_b))^2 / n_b "
        "(square outside the sum)",
    },
    {
        "name": "tutorial-63-kl-missing-half",
        "equation": "(63)",
        "path": "scvi_edu/distributions.py",
        "find": "+ (scale1**2 + (loc1 - loc2) ** 2) / (2 * scale2**2)",
        "replace": "+ (scale1**2 + (loc1 - loc2) ** 2) / (scale2**2)",
        "description": "(63) with the normalising constant 1/(2 pi sigma^2) taken literally: "
        "the quadratic term loses its 1/2 (a slip in the tutorial whose result is right; the "
        "code must keep the 1/2)",
    },
]
