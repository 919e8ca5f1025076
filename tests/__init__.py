"""depi's test suite as a package, so ``tests.<folder>`` helpers import from this repository.

draccus 0.11 installs a top-level ``tests`` package into site-packages; a regular package here takes
precedence over it (a namespace folder would not).
"""
