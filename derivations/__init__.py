"""Symbolic derivations (sympy) of every result of the tutorial, one module per chapter.

``ledger`` holds the equation ledger: every numbered equation (1)-(70) with a computed verdict.
"""
