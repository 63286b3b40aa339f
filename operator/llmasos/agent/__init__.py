"""The LLMasOS node agent: maps pods to GPUs, applies LLMJob power policies, meters and reports energy per pod.

Modules: `backend` (the GPU interface) with `nvml` (real) and `sim` (measured curves); `pods` (what the agent needs
to know about pods, implemented by the Kubernetes adapter); `mapping`/`podresources` (pod -> GPU; `protowire` is the
protobuf wire codec it shares with the local cluster's fake-GPU device plugin); `energy` (counter deltas, power
integration, attribution); `state` (the crash-safe record of caps); `controller` (the loop); `metrics`, `report` and
`main` (the `node-agent` command).
"""
