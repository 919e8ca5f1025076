"""depi: train pi0 / pi0.5 vision-language-action policies on many LeRobot datasets at once."""

__version__ = "0.1.0"

from depi.threads import set_wait_policy as _set_wait_policy

_set_wait_policy()  # before torch is imported (depi.threads)
