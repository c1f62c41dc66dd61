"""Pure inference on sufficient statistics: no SQL, no printing, frozen result objects.

Proportions (Newcombe, Koopman, the claim), means (Welch, Fieller), ratios (delta method),
CUPED, power and sample size, sequential tests (mSPRT, confidence sequences), multiplicity
(Holm, BH), the SRM check and its split parser (``shares``), paired comparisons of runs, and a
labelled Bayesian view. Every method's formula and reference is in its module's docstring.
"""
