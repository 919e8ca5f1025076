"""Reusable test helpers (tiny tokenizers, ...) shared by the test folders."""
