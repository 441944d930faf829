"""The image catalog: which published ImageVersion an image reference resolves to.

Pure functions over catalog entries; no I/O.
"""
