"""Command lines: the operator's program (`operator`, `scaleset-operator`), the kubectl plugin
(`plugin`, `kubectl-scaleset`) and the views both render (`views`)."""
