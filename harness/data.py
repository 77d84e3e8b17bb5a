"""The former name of :mod:`harness.datasets`: plugins and scripts that import ``harness.data`` keep working."""

from harness.datasets import *  # noqa: F403
from harness.datasets import __all__  # noqa: F401
