"""The ``melody`` kind's worker half (its TF-free half is ``shared/kinds/melody/``): the
plug-in and trainer (``kind``), the network's config and vocabulary (``model``), sampling
(``decoding``) through the meter guard (``guard``), the built-in ``folk`` corpus (``folk``)
and a tune's files (``render``), over the causal-LM core (``workers/kinds/causal_lm/``).
Nothing is imported here: ``folk`` and ``render`` need no TensorFlow, and
``python -m atelier.workers.kinds.melody.folk`` builds the corpus without loading it."""
