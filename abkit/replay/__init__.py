"""``abkit replay``, ``abkit runs`` and ``abkit train``: recommenders replayed on logged traffic.

* :mod:`abkit.replay.runner` -- fit or load a recommender, rank every test user's catalogue,
  grade the lists, estimate off-policy values, store the run;
* :mod:`abkit.replay.splits` -- temporal and leave-last-out splits;
* :mod:`abkit.replay.metrics` -- ranking metrics per user (NDCG, hit rate, recall, MRR, MAP...);
* :mod:`abkit.replay.offpolicy` -- replay, IPS, SNIPS and DR with clustered intervals;
* :mod:`abkit.replay.runs` -- stored runs: list, read, delete;
* :mod:`abkit.replay.lstm_contract` -- the LSTM graph contract the core and the plug-in share.
"""
