"""The Kubernetes client core shared by the operator's async client (cluster/kube.py, aiohttp) and the node agent's
blocking one (agent/kube_sync.py, httpx): credentials from kubeconfig (including exec credential plugins, as EKS,
GKE and AKS kubeconfigs use) or the in-cluster ServiceAccount, TLS set-up, the mapping of API answers onto
KubeApiError, and list pagination. Each client only moves bytes.
"""
