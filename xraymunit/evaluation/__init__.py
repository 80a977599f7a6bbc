"""The pieces of `xraymunit evaluate`: data selection, classifier, metrics, quality, report.

Each module has one job; xraymunit/evaluate.py composes them into the stage function.
"""
