"""Names, labels and owner references shared by every child object."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from bbapi_operator import crd

MANAGED_BY = "bbapi-operator"
LABEL_NAME = "app.kubernetes.io/name"
LABEL_INSTANCE = "app.kubernetes.io/instance"
LABEL_COMPONENT = "app.kubernetes.io/component"
LABEL_PART_OF = "app.kubernetes.io/part-of"
LABEL_MANAGED_BY = "app.kubernetes.io/managed-by"


def label_selector(labels: Mapping[str, str]) -> str:
    """The `labelSelector` query string matching objects that carry all of `labels`."""
    return ",".join(f"{name}={value}" for name, value in labels.items())


@dataclass(frozen=True)
class Owner:
    """The BuildBuddyAPI object the children belong to."""

    name: str
    namespace: str
    uid: str

    @classmethod
    def of(cls, body: dict[str, Any]) -> Owner:
        meta = body["metadata"]
        return cls(name=meta["name"], namespace=meta["namespace"], uid=meta["uid"])

    def child(self, component: str) -> str:
        """Name of a child object, e.g. `<name>-gateway`."""
        return f"{self.name}-{component}"

    def selector(self, component: str) -> dict[str, str]:
        """Pod selector labels: immutable, so only the identity of the pods."""
        return {LABEL_NAME: "bbapi", LABEL_INSTANCE: self.name, LABEL_COMPONENT: component}

    def labels(self, component: str) -> dict[str, str]:
        return self.selector(component) | {LABEL_PART_OF: "bbapi", LABEL_MANAGED_BY: MANAGED_BY}

    def managed_selector(self) -> str:
        """Label selector matching every child of this owner, for listing and pruning."""
        return label_selector({LABEL_INSTANCE: self.name, LABEL_MANAGED_BY: MANAGED_BY})

    def reference(self) -> dict[str, Any]:
        """Owner reference that lets the garbage collector delete the child with its owner."""
        return {"apiVersion": crd.API_VERSION, "kind": crd.KIND, "name": self.name, "uid": self.uid,
                "controller": True, "blockOwnerDeletion": True}

    def metadata(self, component: str, name: str | None = None,
                 annotations: dict[str, str] | None = None) -> dict[str, Any]:
        """`metadata` of a child object of `component`."""
        meta: dict[str, Any] = {"name": name or self.child(component), "namespace": self.namespace,
                                "labels": self.labels(component), "ownerReferences": [self.reference()]}
        if annotations:
            meta["annotations"] = annotations
        return meta


def owned_by(obj: dict[str, Any], uid: str) -> bool:
    """Whether `obj` is controlled by the owner with this uid."""
    return any(ref.get("uid") == uid and ref.get("controller")
               for ref in obj.get("metadata", {}).get("ownerReferences", []))
