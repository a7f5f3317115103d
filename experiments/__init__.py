"""Runnable studies: ``python -m experiments.<study> --preset quick``."""
