{{/*
Expand the name of the chart.
*/}}
{{- define "scaleset-operator.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
A default fully qualified app name, truncated at 63 characters because some Kubernetes name
fields are limited to that (by the DNS naming spec). If the release name contains the chart
name, it is used as the full name.
*/}}
{{- define "scaleset-operator.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{/*
Chart name and version as used by the chart label.
*/}}
{{- define "scaleset-operator.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Common labels
*/}}
{{- define "scaleset-operator.labels" -}}
helm.sh/chart: {{ include "scaleset-operator.chart" . }}
{{ include "scaleset-operator.selectorLabels" . }}
{{- if .Chart.AppVersion }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
{{- end }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{/*
Selector labels
*/}}
{{- define "scaleset-operator.selectorLabels" -}}
app.kubernetes.io/name: {{ include "scaleset-operator.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/*
The name of the service account to use.
*/}}
{{- define "scaleset-operator.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "scaleset-operator.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/*
The image reference; the tag defaults to the chart's appVersion.
*/}}
{{- define "scaleset-operator.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}

{{/*
Rules on namespaced resources: granted cluster-wide (ClusterRole) when every namespace is
watched, else by a Role in each watched namespace. Every verb here is one the operator uses.
*/}}
{{- define "scaleset-operator.namespacedRules" -}}
- apiGroups: ["scaleset.dev"]
  resources: ["scalesets"]
  # patch: kopf's annotations on the objects it handles.
  verbs: ["get", "list", "watch", "patch"]
- apiGroups: ["scaleset.dev"]
  resources: ["scalesets/status"]
  verbs: ["get", "update", "patch"]
- apiGroups: [""]
  resources: ["pods"]
  # The instances: created from the template, patched, deleted to reimage.
  verbs: ["get", "list", "watch", "create", "delete", "patch"]
- apiGroups: [""]
  resources: ["persistentvolumeclaims"]
  # Data disks: kept across reimages, so never deleted by the operator.
  verbs: ["get", "list", "create"]
- apiGroups: [""]
  resources: ["events"]
  verbs: ["create", "patch"]
- apiGroups: ["discovery.k8s.io"]
  resources: ["endpointslices"]
  # Application health: an instance is healthy when its endpoints are ready.
  verbs: ["get", "list", "watch"]
- apiGroups: ["policy"]
  resources: ["poddisruptionbudgets"]
  # An OS upgrade takes no more instances out of service than their budgets allow.
  verbs: ["list"]
{{- end }}

{{/*
Rules on cluster-scoped resources, needed in both modes.
*/}}
{{- define "scaleset-operator.clusterRules" -}}
- apiGroups: ["scaleset.dev"]
  resources: ["imageversions"]
  verbs: ["get", "list", "watch"]
- apiGroups: ["scaleset.dev"]
  resources: ["upgradewaves"]
  # Waves order platform upgrades across scale sets; the operator keeps their status, and
  # patches only its notification record (the scaleset.dev/notified annotation).
  verbs: ["get", "list", "watch", "patch"]
- apiGroups: ["scaleset.dev"]
  resources: ["upgradewaves/status"]
  verbs: ["get", "update", "patch"]
- apiGroups: [""]
  resources: ["nodes"]
  # Zones of the nodes instances run on (topology.kubernetes.io/zone), read only.
  verbs: ["get", "list"]
- apiGroups: ["apiextensions.k8s.io"]
  resources: ["customresourcedefinitions"]
  # kopf follows the CRDs of the resources it serves.
  verbs: ["get", "list", "watch"]
- apiGroups: [""]
  resources: ["namespaces"]
  # kopf lists namespaces even when given exact names; without this it retries, logs 403s and
  # falls back to assuming the watched namespaces exist.
  verbs: ["list", "watch"]
{{- end }}

{{/*
Arguments of `scaleset-operator run` (the image's entrypoint), one YAML list item each.
*/}}
{{- define "scaleset-operator.args" -}}
- --upgrade-delay={{ .Values.operator.upgradeDelaySeconds }}
- --status-interval={{ .Values.operator.statusIntervalSeconds }}
- {{ ternary "--fail-fast" "--no-fail-fast" .Values.operator.failFast }}
- --log-format={{ .Values.operator.logFormat }}
- --metrics-port={{ .Values.metrics.port }}
- --health-port={{ .Values.healthPort }}
{{- range .Values.watchNamespaces }}
- --namespace={{ . }}
{{- end }}
{{- if .Values.leaderElection.enabled }}
- --leader-elect
- --lease-namespace={{ .Release.Namespace }}
- --lease-duration={{ .Values.leaderElection.leaseDurationSeconds }}
{{- end }}
{{- range $i, $sink := .Values.notifications.sinks }}
- {{ printf "--notify-url=%s" $sink.url | quote }}
{{- /* One file per URL, in the same order; an empty one leaves that sink unsigned. */}}
- --notify-secret-file={{ if $sink.secretName }}{{ include "scaleset-operator.notifyKeyDir" $i }}/key{{ end }}
{{- end }}
{{- if .Values.notifications.sinks }}
- --notify-backoff-cap={{ .Values.notifications.backoffCapSeconds }}
{{- end }}
{{- range .Values.operator.extraArgs }}
- {{ . | quote }}
{{- end }}
{{- end }}

{{/* Where the Secret that signs the requests of the sink with this index is mounted. */}}
{{- define "scaleset-operator.notifyKeyDir" -}}
/etc/scaleset-operator/notify/{{ . }}
{{- end }}
