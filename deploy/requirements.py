"""Print what ``pip install ".[EXTRA]"`` would pull in for Atelier's core and the named
extras, one requirement a line, from pyproject.toml.

The images install these in a layer of their own before the source is copied: a change to
the code then rebuilds in seconds instead of downloading TensorFlow again.
    python deploy/requirements.py worker > /tmp/requirements.txt
"""

import sys
import tomllib
from pathlib import Path

project = tomllib.loads(Path("pyproject.toml").read_text())["project"]
wanted = list(project["dependencies"])
for extra in sys.argv[1:]:
    wanted += project["optional-dependencies"][extra]
print("\n".join(wanted))
