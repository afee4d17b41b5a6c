"""Transitional: ``lexfast.kernel`` under its old name, for the modules that
still import ``from .core import ...``. Removed once they import the kernel."""

from .kernel import *  # noqa: F403
from .kernel import __all__, impl  # noqa: F401
