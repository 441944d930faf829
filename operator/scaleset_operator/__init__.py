"""scaleset-operator: Azure VM scale set automatic OS image upgrades, for pods."""

__version__ = "0.1.0"
