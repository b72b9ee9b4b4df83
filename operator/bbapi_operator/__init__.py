"""The bbapi Kubernetes operator: reconciles `BuildBuddyAPI` objects into running services.

Pure modules build the desired state (`crd`, `spec`, `meta`, `pods`, `workloads`, `networking`,
`policies`, `membership`, `apikey`, `desired`, `status`); `kube` and `apply` talk to the API
server; `reconcile` runs one pass; `controller` wires it into kopf; `main` and `handlers` start it.
"""
