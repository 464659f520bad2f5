"""Reward functions: one module per family, combined by config weights in `registry`.

`accuracy` holds the ONE implementation of every answer metric (also used by evaluation).
"""
