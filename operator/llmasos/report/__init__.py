"""`llmasos report`: a sustainability report (HTML with charts, CSV, JSON) from the LLMJobs' `status.carbon`.

Why a separate package: the numbers come from status objects the operator already wrote, so the report needs no
operator state and runs anywhere (a laptop with a kubeconfig, or CI on an exported `kubectl get llmjobs -A -o json`).
`model` reads jobs, `aggregate` totals them, `methodology` explains them, `html`/`writers` render them, `cli` wires it.
"""
