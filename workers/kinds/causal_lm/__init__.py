"""What every kind built on a causal language model shares, written once: the network and
its training recipe (``network``), compiled sampling (``sampling``), the trainer's part of
a run (``trainer``) and the token n-gram a network can be interpolated with (``ngram``).
``textgen`` and ``melody`` are built on it; a later token model would be too."""
