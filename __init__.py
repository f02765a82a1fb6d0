"""The repository's root, read as one package by tools that read the tree.

Python never imports this file: the installed import root is ``atelier`` (``src/atelier``
links to ``atelier/``, which links ``api``, ``workers``, ``shared`` and ``cli``). Inside
those folders modules import each other relatively (``from ..shared.jobs import Job``);
this file makes the folders siblings in one package for a static reader too, so it follows
``..shared`` from ``api/`` to ``shared/`` exactly as Python does inside ``atelier``. See
docs/development.md, "One spelling per module".
"""
