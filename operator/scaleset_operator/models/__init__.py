"""Typed shapes of the ScaleSet and ImageVersion resources and of observed instances.

Pure data: no I/O, no Kubernetes client. The CRD schemas in `crds/` are rendered from here.
"""
