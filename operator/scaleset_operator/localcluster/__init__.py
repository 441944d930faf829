"""A local Kubernetes control plane with simulated nodes, for tests and demos."""

from scaleset_operator.localcluster.binaries import (
    BinaryNotFoundError,
    find_binary,
    resolve_binaries,
    testbin_dir,
)
from scaleset_operator.localcluster.cluster import (
    PROVISIONER_NAME,
    STORAGE_CLASS,
    ClusterStatus,
    ComponentStatus,
    LocalCluster,
    LocalClusterError,
)

__all__ = [
    "PROVISIONER_NAME",
    "STORAGE_CLASS",
    "BinaryNotFoundError",
    "ClusterStatus",
    "ComponentStatus",
    "LocalCluster",
    "LocalClusterError",
    "find_binary",
    "resolve_binaries",
    "testbin_dir",
]
