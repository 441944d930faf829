"""`kubectl scaleset`, the kubectl plugin: one module per verb group, wired together in `main`.
Talks to the cluster only with the user's own credentials (`k8s.userapi`), never as the
operator."""
