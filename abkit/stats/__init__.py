"""Pure inference on sufficient statistics: no SQL, no printing, frozen result objects.

Proportions (Newcombe, Koopman, the claim), means (Welch, Fieller), ratios (delta method),
CUPED, power and sample size, sequential tests (mSPRT, confidence sequences), multiplicity
(Holm, BH), the SRM check and its split parser (``shares``), paired comparisons of runs, a
labelled Bayesian view, and the check of a classifier's accuracy claim (``classification``:
the majority baseline, DeLong's AUC interval, log loss, Brier score, calibration). Every
method's formula and reference is in its module's docstring.
"""
