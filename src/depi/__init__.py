"""depi: train pi0 / pi0.5 vision-language-action policies on many LeRobot datasets at once."""

__version__ = "0.1.0"
