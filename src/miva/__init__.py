"""MIVA: train vision-language models into tool-using multi-image agents with end-to-end RL."""

__version__ = "0.1.0"
