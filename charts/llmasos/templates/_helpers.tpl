{{/* Names, labels and small shared fragments of the LLMasOS chart. */}}

{{- define "llmasos.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "llmasos.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 50 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 50 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 50 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "llmasos.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Labels of every object; pass a dict with "ctx" (the root context) and "component". */}}
{{- define "llmasos.labels" -}}
helm.sh/chart: {{ include "llmasos.chart" .ctx }}
{{ include "llmasos.selectorLabels" . }}
app.kubernetes.io/version: {{ .ctx.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .ctx.Release.Service }}
app.kubernetes.io/part-of: llmasos
{{- with .ctx.Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{- define "llmasos.selectorLabels" -}}
app.kubernetes.io/name: {{ include "llmasos.name" .ctx }}
app.kubernetes.io/instance: {{ .ctx.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "llmasos.operatorServiceAccount" -}}
{{- if .Values.operator.serviceAccount.create -}}
{{- default (printf "%s-operator" (include "llmasos.fullname" .)) .Values.operator.serviceAccount.name -}}
{{- else -}}
{{- required "operator.serviceAccount.name is required when operator.serviceAccount.create is false" .Values.operator.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "llmasos.agentServiceAccount" -}}
{{- if .Values.agent.serviceAccount.create -}}
{{- default (printf "%s-agent" (include "llmasos.fullname" .)) .Values.agent.serviceAccount.name -}}
{{- else -}}
{{- required "agent.serviceAccount.name is required when agent.serviceAccount.create is false" .Values.agent.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/* Namespace of the node agent (and of its power reports): agent.namespace, else the release namespace. */}}
{{- define "llmasos.agentNamespace" -}}
{{- default .Release.Namespace .Values.agent.namespace -}}
{{- end -}}

{{/* In namespaced mode: true when the agents' report namespace is not one of the watched namespaces, so the
operator serves it for the reports only (LLMASOS_REPORT_NAMESPACE, operator/llmasos/handlers/watch_scope.py). */}}
{{- define "llmasos.reportNamespaceExtra" -}}
{{- if and .Values.operator.watchNamespaces (not (has (include "llmasos.agentNamespace" .) .Values.operator.watchNamespaces)) -}}
true
{{- end -}}
{{- end -}}

{{- define "llmasos.peeringName" -}}
{{- default (include "llmasos.fullname" .) .Values.operator.leaderElection.name -}}
{{- end -}}

{{- define "llmasos.image" -}}
{{- if .Values.image.digest -}}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}
{{- end -}}

{{/* "@<operator.settings.workerImageDigest>" when that is set, appended to operator.settings.workerImage. */}}
{{- define "llmasos.workerImageDigestSuffix" -}}
{{- $s := .Values.operator.settings -}}
{{- if $s.workerImageDigest -}}
{{- if contains "@" $s.workerImage -}}
{{- fail (printf "operator.settings.workerImage %q already has a digest: leave operator.settings.workerImageDigest empty, or drop the @... part" $s.workerImage) -}}
{{- end -}}
{{- printf "@%s" $s.workerImageDigest -}}
{{- end -}}
{{- end -}}

{{/* Fail early on combinations that cannot work. */}}
{{- define "llmasos.validate" -}}
{{- if and (gt (int .Values.operator.replicas) 1) (not .Values.operator.leaderElection.enabled) -}}
{{- fail "operator.replicas > 1 needs operator.leaderElection.enabled: without it every replica would reconcile every LLMJob" -}}
{{- end -}}
{{- range .Values.carbon.sources -}}
{{- if not (has . (list "electricitymaps" "trace" "static")) -}}
{{- fail (printf "carbon.sources takes electricitymaps, trace and static, got %q" .) -}}
{{- end -}}
{{- end -}}
{{- if and (eq (join "," .Values.carbon.sources) "electricitymaps") (not .Values.carbon.electricityMaps.existingSecret) -}}
{{- fail "carbon.sources [electricitymaps] alone needs carbon.electricityMaps.existingSecret (a Secret holding the API token)" -}}
{{- end -}}
{{- range .Values.operator.watchNamespaces -}}
{{- if or (contains "*" .) (contains "?" .) -}}
{{- fail (printf "operator.watchNamespaces takes exact namespace names, not patterns: %q" .) -}}
{{- end -}}
{{- end -}}
{{- end -}}


{{/* Egress peers of the Kubernetes API server: networkPolicy.apiServerCidrs, else the addresses of the
default/kubernetes Endpoints looked up at install (a /32 or /128 each), else (helm template, no cluster to ask) any
address on the API server ports only, which NOTES.txt reports (set apiServerCidrs for offline renders). */}}
{{- define "llmasos.apiServerPeers" -}}
{{- $cidrs := .Values.networkPolicy.apiServerCidrs -}}
{{- if not $cidrs -}}
{{- $ep := lookup "v1" "Endpoints" "default" "kubernetes" -}}
{{- range ($ep.subsets | default list) -}}
{{- range (.addresses | default list) -}}
{{- $cidrs = append $cidrs (printf "%s/%s" .ip (ternary "128" "32" (contains ":" .ip))) -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- if not $cidrs -}}
{{- $cidrs = list "0.0.0.0/0" -}}
{{- end -}}
{{- range $cidrs }}
- ipBlock:
    cidr: {{ . }}
{{- end }}
{{- end -}}

{{/* "true" when the API server's addresses are neither set nor could be looked up (offline render). */}}
{{- define "llmasos.apiServerUnknown" -}}
{{- if and .Values.networkPolicy.enabled (not .Values.networkPolicy.apiServerCidrs) -}}
{{- if not (lookup "v1" "Endpoints" "default" "kubernetes") -}}true{{- end -}}
{{- end -}}
{{- end -}}

{{/* "true" when a Prometheus Operator kind may be rendered: its API is known to helm (a live cluster, or
--api-versions monitoring.coreos.com/v1/<Kind>), or monitoring.skipApiCheck is set. Call with (list . "<Kind>"). */}}
{{- define "llmasos.monitoringApi" -}}
{{- $ctx := index . 0 -}}
{{- if or $ctx.Values.monitoring.skipApiCheck ($ctx.Capabilities.APIVersions.Has (printf "monitoring.coreos.com/v1/%s" (index . 1))) -}}
true
{{- end -}}
{{- end -}}

{{/* The monitoring objects asked for but skipped because their API is not known (NOTES.txt lists them). */}}
{{- define "llmasos.skippedMonitoring" -}}
{{- $skipped := list -}}
{{- if and .Values.operator.enabled .Values.monitoring.serviceMonitor.enabled (not (include "llmasos.monitoringApi" (list . "ServiceMonitor"))) -}}
{{- $skipped = append $skipped "ServiceMonitor" -}}
{{- end -}}
{{- if and .Values.agent.enabled .Values.monitoring.podMonitor.enabled (not (include "llmasos.monitoringApi" (list . "PodMonitor"))) -}}
{{- $skipped = append $skipped "PodMonitor" -}}
{{- end -}}
{{- if and .Values.monitoring.prometheusRule.enabled (not (include "llmasos.monitoringApi" (list . "PrometheusRule"))) -}}
{{- $skipped = append $skipped "PrometheusRule" -}}
{{- end -}}
{{- join ", " $skipped -}}
{{- end -}}

{{/* The minimum Kubernetes version (see Chart.yaml), checked only against a live cluster: lookup answers nothing
in an offline `helm template`, where .Capabilities.KubeVersion is helm's compiled-in default, not a cluster's. */}}
{{- define "llmasos.checkKubeVersion" -}}
{{- if lookup "v1" "Namespace" "" "kube-system" -}}
{{- if not (semverCompare ">=1.31.0-0" .Capabilities.KubeVersion.Version) -}}
{{- fail (printf "llmasos needs Kubernetes >= 1.31 (Job successPolicy and podFailurePolicy); this cluster is %s" .Capabilities.KubeVersion.Version) -}}
{{- end -}}
{{- end -}}
{{- end -}}
