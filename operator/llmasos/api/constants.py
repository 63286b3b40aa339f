"""Names shared by the CRD, the operator and the node agent: API group, labels, annotations, finalizers."""

from __future__ import annotations

GROUP = "llmasos.io"
VERSION = "v1alpha1"
KIND = "LLMJob"
PLURAL = "llmjobs"
SINGULAR = "llmjob"
SHORT_NAMES = ("llmj",)
CRD_NAME = f"{PLURAL}.{GROUP}"

# Labels the operator puts on every child object (and pod) so they can be found without owner lookups.
LABEL_LLMJOB = "llmasos.io/llmjob"
LABEL_ROLE = "llmasos.io/role"  # worker | ray
LABEL_ATTEMPT = "llmasos.io/attempt"
# Set by the Job controller on an Indexed Job's pods: the worker's NODE_RANK, and how the node agent tells a
# multi-node job's first pod (index 0) from the others.
INDEX_ANNOTATION = "batch.kubernetes.io/job-completion-index"
LABEL_MANAGED_BY = "app.kubernetes.io/managed-by"
MANAGED_BY = "llmasos"

# Node labels the operator reads for placement.
NODE_POOL_LABEL = "llmasos.io/pool"
NODE_CARBON_ZONE_LABEL = "llmasos.io/carbon-zone"
NODE_GPU_PRODUCT_LABEL = "nvidia.com/gpu.product"
GPU_RESOURCE = "nvidia.com/gpu"

# Kueue's conventional label naming the LocalQueue of a job (spec.queueName is copied to the child Job under it).
KUEUE_QUEUE_LABEL = "kueue.x-k8s.io/queue-name"

# The LLMJob's spec.power as JSON on every worker pod, read by the node agent.
POWER_ANNOTATION = "llmasos.io/power"

# LLMJob annotations with this prefix are copied onto worker pods (the local control plane's kwok stages read
# sim.llmasos.io/duration and sim.llmasos.io/outcome from them).
POD_ANNOTATION_PREFIXES = ("sim.llmasos.io/",)

# kopf keeps its handler progress and last-handled spec in annotations under this prefix (not in status, whose
# schema is ours).
KOPF_ANNOTATION_PREFIX = "kopf.llmasos.io"
