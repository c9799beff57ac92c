"""Helpers for the course "Deep Learning II: Advanced Neural Network Architectures".

Lecture and assignment notebooks import from here instead of repeating code;
the `course` command-line tool is a thin layer over the same modules.
"""

__version__ = "0.1.0"
