"""The bbapi Kubernetes operator: reconciles `BuildBuddyAPI` objects into running services.

Pure modules build the desired state (`crd`, `spec`, `meta`, `pods`, `workloads`, `networking`,
`policies`, `membership`, `apikey`, `desired`, `status`); `kube` and `apply` talk to the API
server, `zones` reads where the CAS pods run; `reconcile` runs one pass; `controller` wires it
into kopf; `main` and `handlers` start it.
"""
