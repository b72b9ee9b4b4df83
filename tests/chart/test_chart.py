"""The Helm chart: renders for every values file, validates strictly, and is least privilege."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

import helm_python
import pytest
import yaml
from bbapi_operator import apply, controller, crd, kube, settings

from tests.chart.helm import Rendered, render
from tests.chart.kubeschema import CHART, REPO, validate_strict

CI_VALUES = sorted((CHART / "ci").glob("*-values.yaml"))
VALUES = {"default": {}, **{path.name: yaml.safe_load(path.read_text()) for path in CI_VALUES}}
SEVERITY_WARNING = 2  # Helm lint: 1 info, 2 warning, 3 error


def chart_meta() -> dict[str, Any]:
    meta: dict[str, Any] = yaml.safe_load((CHART / "Chart.yaml").read_text())
    return meta


def roles(rendered: Rendered, *, nodes: bool = False) -> list[dict[str, Any]]:
    """The operator's Role or ClusterRole (and bindings), or with `nodes` its ClusterRole for nodes."""
    return [d for d in rendered.documents if d["kind"].endswith(("Role", "RoleBinding"))
            and d["metadata"]["name"].endswith("-nodes") == nodes]


def rules(rendered: Rendered) -> list[dict[str, Any]]:
    role = [d for d in roles(rendered) if d["kind"] in ("ClusterRole", "Role")]
    assert len(role) == 1
    found: list[dict[str, Any]] = role[0]["rules"]
    return found


def verbs(rendered: Rendered, group: str, resource: str) -> set[str]:
    return {verb for rule in rules(rendered) if group in rule["apiGroups"] and resource in rule["resources"]
            for verb in rule["verbs"]}


@pytest.mark.parametrize("values", VALUES.values(), ids=VALUES.keys())
def test_every_document_validates_strictly(values: dict[str, Any]) -> None:
    rendered = render(values, crds=True)
    assert validate_strict(rendered.documents) == len(rendered.documents) >= 5


@pytest.mark.parametrize("values", VALUES.values(), ids=VALUES.keys())
def test_lint_is_clean(values: dict[str, Any]) -> None:
    result = helm_python.lint(str(CHART), values=values, strict=True)
    assert [m for m in result["messages"] if m["severity"] >= SEVERITY_WARNING] == []


def test_schema_violating_values_are_rejected() -> None:
    bad = yaml.safe_load((Path(__file__).parent / "bad-values.yaml").read_text())
    with pytest.raises(helm_python.HelmValuesError) as raised:
        render(bad)
    for problem in ("eventsLevel", "watchNamespace", "replicaCount"):
        assert problem in str(raised.value)
    assert helm_python.lint(str(CHART), values=bad)["errors"]


def test_labels_and_selectors() -> None:
    rendered = render({"instance": {"enabled": True}})
    for document in rendered.documents:
        labels = document["metadata"]["labels"]
        assert labels["app.kubernetes.io/managed-by"] == "Helm"
        assert labels["app.kubernetes.io/instance"] == "bbapi"
        assert labels["helm.sh/chart"] == f"bbapi-{chart_meta()['version']}"
    deployment = rendered.one("Deployment")
    selector = deployment["spec"]["selector"]["matchLabels"]
    assert selector.items() <= deployment["spec"]["template"]["metadata"]["labels"].items()
    assert "app.kubernetes.io/version" not in selector  # selectors are immutable: identity only


def test_operator_deployment() -> None:
    rendered = render()
    deployment = rendered.one("Deployment")
    assert deployment["metadata"]["name"] == "bbapi-operator"
    assert deployment["spec"]["replicas"] == 1 and deployment["spec"]["strategy"] == {"type": "Recreate"}
    pod = deployment["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    image = f"ghcr.io/bbapi/bbapi:{chart_meta()['appVersion']}"
    assert container["image"] == image and container["args"] == ["operator"] and "command" not in container
    env = {e["name"]: e["value"] for e in container["env"]}
    assert env["BBAPI_DEFAULT_IMAGE"] == image and env["BBAPI_WATCH_NAMESPACE"] == ""
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "health"}
    assert env["BBAPI_HEALTH_PORT"] == "8080" and container["ports"][0]["containerPort"] == 8080
    assert pod["serviceAccountName"] == rendered.one("ServiceAccount")["metadata"]["name"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert container["securityContext"]["readOnlyRootFilesystem"] is True


def test_rbac_grants_exactly_what_the_operator_uses() -> None:
    rendered = render()
    assert not any("*" in rule["verbs"] or "*" in rule["resources"] for rule in rules(rendered))
    for kind_name in apply.PRUNABLE:  # read, create, patch and prune every kind of child
        kind = kube.KINDS[kind_name]
        expected = {"get", "list", "create", "patch", "delete"}
        if kind in controller.CHILD_KINDS:
            expected.add("watch")  # status follows these
        assert verbs(rendered, kind.group, kind.plural) == expected, kind_name
    assert verbs(rendered, crd.GROUP, crd.PLURAL) == {"get", "list", "watch", "patch"}
    assert verbs(rendered, crd.GROUP, f"{crd.PLURAL}/status") == {"get", "patch"}
    assert verbs(rendered, "", "secrets") == {"create"}  # never read a Secret
    assert verbs(rendered, "", "pods") == {"list"}
    assert verbs(rendered, "", "persistentvolumeclaims") == {"list", "patch"}  # grown, never created or deleted
    (binding,) = [d for d in roles(rendered) if d["kind"] == "ClusterRoleBinding"]
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "bbapi-operator", "namespace": "builds"}]
    assert_nodes_readable(rendered)


def assert_nodes_readable(rendered: Rendered) -> None:
    """Whatever the namespace scope, the operator may `get` nodes (for zones), and nothing else there."""
    role, binding = sorted(roles(rendered, nodes=True), key=lambda d: str(d["kind"]))
    assert (role["kind"], binding["kind"]) == ("ClusterRole", "ClusterRoleBinding")
    assert role["rules"] == [{"apiGroups": [""], "resources": ["nodes"], "verbs": ["get"]}]
    assert binding["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                                  "name": role["metadata"]["name"]}
    (operator_binding,) = [d for d in roles(rendered) if d["kind"].endswith("RoleBinding")]
    assert binding["subjects"] == operator_binding["subjects"]


def test_namespaced_operator_gets_a_role_in_that_namespace() -> None:
    rendered = render(VALUES["namespaced-values.yaml"])
    assert not [d for d in roles(rendered) if d["kind"].startswith("Cluster")]
    assert_nodes_readable(rendered)
    assert rendered.one("Role")["metadata"]["namespace"] == "builds"
    assert rendered.one("RoleBinding")["roleRef"]["kind"] == "Role"
    env = {e["name"]: e.get("value") for e in rendered.one("Deployment")["spec"]["template"]["spec"]
           ["containers"][0]["env"]}
    assert env["BBAPI_WATCH_NAMESPACE"] == "builds" and env["BBAPI_RETRY_SECONDS"] == "30"


def test_instance_from_values_uses_the_chart_image() -> None:
    trial = render(VALUES["embedded-values.yaml"]).one(crd.KIND)
    assert trial["metadata"] == {"name": "trial", "namespace": "builds", "labels": trial["metadata"]["labels"]}
    assert trial["spec"]["image"] == f"ghcr.io/bbapi/bbapi:{chart_meta()['appVersion']}"
    distributed = render(VALUES["distributed-values.yaml"]).one(crd.KIND)
    assert distributed["metadata"]["name"] == "bbapi"
    assert distributed["spec"]["image"] == "registry.example.com/bbapi:0.1.0-rc1"
    assert distributed["spec"]["imagePullSecrets"] == [{"name": "regcred"}]


def test_operator_can_be_left_out() -> None:
    rendered = render({"operator": {"enabled": False}, "instance": {"enabled": True}})
    assert [d["kind"] for d in rendered.documents] == [crd.KIND]
    assert "run it yourself" in rendered.notes


def test_notes_tell_how_to_get_the_key_and_the_bazel_flags() -> None:
    notes = render(VALUES["embedded-values.yaml"]).notes
    assert "get secret trial-api-key -o jsonpath='{.data.api-key}'" in notes
    assert "--remote_header=x-buildbuddy-api-key=$BB_API_KEY" in notes
    assert "--bes_backend=grpc://localhost:1985" in notes and "--remote_cache=grpc://localhost:1985" in notes
    assert "port-forward svc/trial-gateway 1985:1985 8080:8080" in notes
    own_key = render(VALUES["distributed-values.yaml"]).notes
    assert "get secret bbapi-api-key" in own_key and "port-forward svc/bbapi-gateway 1985:443 8080:80" in own_key
    assert "kind: BuildBuddyAPI" in render().notes  # nothing created: how to create one


def test_versions_agree() -> None:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["version"]
    meta = chart_meta()
    assert meta["apiVersion"] == "v2" and meta["appVersion"] == project
    assert f"ghcr.io/bbapi/bbapi:{project}" == settings.DEFAULT_IMAGE
    assert yaml.safe_load((CHART / "values.yaml").read_text())["image"]["repository"] == "ghcr.io/bbapi/bbapi"


def test_instance_and_notes_go_where_the_operator_watches() -> None:
    rendered = render(VALUES["scheduled-values.yaml"], namespace="platform")
    assert rendered.one(crd.KIND)["metadata"]["namespace"] == "builds"
    assert rendered.one("Deployment")["metadata"]["namespace"] == "platform"
    assert "kubectl -n builds wait buildbuddyapi/bbapi" in rendered.notes
    assert "kubectl -n platform" not in rendered.notes
    nothing = render({"operator": {"watchNamespace": "builds"}}, namespace="platform").notes
    assert "kubectl -n builds apply -f -" in nothing
    own = render({"instance": {"enabled": True}}, namespace="platform")
    assert own.one(crd.KIND)["metadata"]["namespace"] == "platform"


def test_a_long_release_name_still_gives_a_valid_instance_name() -> None:
    release = "a-very-long-release-name-for-the-build-infrastructure"
    name = render({"instance": {"enabled": True}}, release=release).one(crd.KIND)["metadata"]["name"]
    assert len(name) <= crd.MAX_NAME_LENGTH and release.startswith(name) and not name.endswith("-")


def test_tls_publishing_through_ingress_and_gateway_api() -> None:
    rendered = render(VALUES["tls-values.yaml"])
    grpc, http = rendered.find("Ingress", "bbapi-grpc"), rendered.find("Ingress", "bbapi-http")
    assert len(grpc) == len(http) == 1
    annotations = grpc[0]["metadata"]["annotations"]
    assert annotations["nginx.ingress.kubernetes.io/backend-protocol"] == "GRPCS"  # re-encrypt to the gateway
    assert annotations["cert-manager.io/cluster-issuer"] == "letsencrypt"
    assert http[0]["metadata"]["annotations"]["nginx.ingress.kubernetes.io/backend-protocol"] == "HTTPS"
    assert grpc[0]["spec"]["tls"] == [{"hosts": ["cache.example.com"], "secretName": "bbapi-ingress-tls"}]
    backend = grpc[0]["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"]
    assert backend == {"name": "bbapi-gateway", "port": {"name": "grpc"}}
    route = rendered.one("GRPCRoute")["spec"]
    assert route["parentRefs"] == [{"name": "public", "namespace": "gateways"}]
    assert route["rules"] == [{"backendRefs": [{"name": "bbapi-gateway", "port": 1985}]}]
    assert rendered.one("HTTPRoute")["spec"]["rules"][0]["backendRefs"][0]["port"] == 8080
    assert rendered.one(crd.KIND)["spec"]["tls"] == {"secretName": "bbapi-gateway-tls"}
    assert "--remote_cache=grpcs://localhost:1985" in rendered.notes

    plain = render({"instance": {"enabled": True}, "ingress": {"enabled": True, "grpcHost": "cache.example.com"}})
    (ingress,) = plain.find("Ingress")
    assert ingress["metadata"]["annotations"]["nginx.ingress.kubernetes.io/backend-protocol"] == "GRPC"
    assert "tls" not in ingress["spec"] and not plain.find("GRPCRoute")
    assert not render(VALUES["embedded-values.yaml"]).find("Ingress")  # off by default


def test_publishing_needs_a_host_or_a_gateway() -> None:
    for bad in ({"ingress": {"enabled": True}}, {"gatewayAPI": {"enabled": True}}):
        with pytest.raises(helm_python.HelmValuesError):
            render(bad)
