"""Probes: plain functions that measure a behaviour inside a language model.

Nothing in this package imports pytest; every probe can be called from a notebook.
"""
