"""`scaleset-operator`, the operator's own program: run, crds, cluster and demo, wired together
in `main`. Shares nothing with the kubectl plugin but the views."""
