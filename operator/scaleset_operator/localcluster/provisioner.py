"""A tiny dynamic volume provisioner for the local cluster (run as its own process).

For each Pending claim of our StorageClass it creates a hostPath PersistentVolume under
``DIR/pv/``, pre-bound to the claim through ``claimRef``; kube-controller-manager's PV controller
then does the binding. Released volumes of ours with reclaim policy Delete are deleted.

    python -m scaleset_operator.localcluster.provisioner --dir DIR
"""

from __future__ import annotations

import argparse
import json
import shutil
import threading
import time
from collections.abc import Callable
from pathlib import Path

from scaleset_operator.localcluster.kubeapi import ApiError, Obj, PlainKubeClient
from scaleset_operator.localcluster.pki import Pki

PROVISIONED_BY = "pv.kubernetes.io/provisioned-by"


def _log(message: str) -> None:
    print(f"{time.strftime('%H:%M:%S')} {message}", flush=True)


class Provisioner:
    def __init__(
        self, api: PlainKubeClient, directory: Path, storage_class: str, name: str
    ) -> None:
        self.api = api
        self.volumes_dir = directory / "pv"
        self.storage_class = storage_class
        self.name = name

    def on_claim(self, claim: Obj) -> None:
        meta, spec = claim["metadata"], claim.get("spec", {})
        if (
            spec.get("storageClassName") != self.storage_class
            or spec.get("volumeName")
            or claim.get("status", {}).get("phase") != "Pending"
            or meta.get("deletionTimestamp")
        ):
            return
        pv_name = f"pvc-{meta['uid']}"
        if self.api.get_or_none(f"/api/v1/persistentvolumes/{pv_name}") is not None:
            return
        path = self.volumes_dir / pv_name
        path.mkdir(parents=True, exist_ok=True)
        size = spec.get("resources", {}).get("requests", {}).get("storage", "1Gi")
        volume = {
            "apiVersion": "v1",
            "kind": "PersistentVolume",
            "metadata": {"name": pv_name, "annotations": {PROVISIONED_BY: self.name}},
            "spec": {
                "capacity": {"storage": size},
                "accessModes": spec.get("accessModes") or ["ReadWriteOnce"],
                "volumeMode": spec.get("volumeMode") or "Filesystem",
                "persistentVolumeReclaimPolicy": "Delete",
                "storageClassName": self.storage_class,
                "hostPath": {"path": str(path), "type": "DirectoryOrCreate"},
                "claimRef": {
                    "apiVersion": "v1",
                    "kind": "PersistentVolumeClaim",
                    "namespace": meta["namespace"],
                    "name": meta["name"],
                    "uid": meta["uid"],
                },
            },
        }
        self.api.create("/api/v1/persistentvolumes", volume)
        _log(f"provisioned {pv_name} ({size}) for {meta['namespace']}/{meta['name']}")

    def on_volume(self, volume: Obj) -> None:
        meta = volume["metadata"]
        if (
            meta.get("annotations", {}).get(PROVISIONED_BY) != self.name
            or volume.get("spec", {}).get("persistentVolumeReclaimPolicy") != "Delete"
            or volume.get("status", {}).get("phase") not in ("Released", "Failed")
            or meta.get("deletionTimestamp")
        ):
            return
        self.api.delete(f"/api/v1/persistentvolumes/{meta['name']}")
        shutil.rmtree(self.volumes_dir / meta["name"], ignore_errors=True)
        _log(f"deleted released volume {meta['name']}")


def run_informer(api: PlainKubeClient, path: str, handle: Callable[[Obj], None]) -> None:
    """List, then watch, forever; any error (apiserver restart, expired version) relists."""
    while True:
        try:
            listing = api.get(path)
            for item in listing.get("items", []):
                handle(item)
            version = str(listing["metadata"]["resourceVersion"])
            while True:
                for event in api.watch(path, version):
                    obj = event["object"]
                    if event["type"] == "ERROR":
                        raise ApiError(int(obj.get("code", 500)), "watch", json.dumps(obj))
                    version = str(obj["metadata"]["resourceVersion"])
                    if event["type"] in ("ADDED", "MODIFIED"):
                        handle(obj)
        except Exception as exc:  # must survive anything and relist
            _log(f"{path}: {type(exc).__name__}: {exc}; relisting")
            time.sleep(0.5)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--dir", required=True, type=Path)
    parser.add_argument("--storage-class", default="standard")
    parser.add_argument("--provisioner-name", default="scaleset.dev/local-sim")
    args = parser.parse_args(argv)
    directory: Path = args.dir
    state = json.loads((directory / "state.json").read_text())
    pki = Pki(directory / "pki")
    api = PlainKubeClient(
        "127.0.0.1", int(state["ports"]["apiserver"]), pki.tokens()["provisioner"], pki.ca_cert
    )
    prov = Provisioner(api, directory, args.storage_class, args.provisioner_name)
    _log(f"watching claims of class {args.storage_class}")
    volumes = threading.Thread(
        target=run_informer, args=(api, "/api/v1/persistentvolumes", prov.on_volume), daemon=True
    )
    volumes.start()
    run_informer(api, "/api/v1/persistentvolumeclaims", prov.on_claim)


if __name__ == "__main__":
    main()
