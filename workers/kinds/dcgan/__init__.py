"""The ``dcgan`` kind's worker half (its TF-free half is ``shared/kinds/dcgan.py``): the
plug-in (``kind``), the networks (``model``), the trainer (``training``), differentiable
augmentation (``augment``), compiled generation (``inference``) and a generate job's images
(``drawing``). Nothing is imported here, so naming a module of the package loads only what
it needs."""
