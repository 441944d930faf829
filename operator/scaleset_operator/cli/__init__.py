"""Command lines: the operator entry point (`scaleset-operator`) and the kubectl plugin."""
