"""The ``textgen`` kind's worker half (its TF-free half is ``shared/kinds/textgen.py``): the
plug-in and trainer (``kind``), bytes or a byte-pair vocabulary (``tokens``), the held-out
text (``held_out``) and writing text (``decoding``), over the causal-LM core
(``workers/kinds/causal_lm/``). Nothing is imported here, so naming a module of the
package loads only what it needs."""
