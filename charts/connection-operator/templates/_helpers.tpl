{{/* Chart name, truncated to the 63 characters a label value allows. */}}
{{- define "connection-operator.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Full name of the release's objects. */}}
{{- define "connection-operator.fullname" -}}
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

{{/* Selector labels: stable across upgrades (a Deployment's selector is immutable). */}}
{{- define "connection-operator.selectorLabels" -}}
app.kubernetes.io/name: {{ include "connection-operator.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/* The standard app.kubernetes.io labels on every object. */}}
{{- define "connection-operator.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "connection-operator.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/component: operator
app.kubernetes.io/part-of: connection-operator
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "connection-operator.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "connection-operator.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/*
The rules for Connections, Providers, their Secrets and Events, in every namespace the
operator watches. Exactly the calls the controller makes, nothing more:
- connections: list/watch (the controller's watcher and reflector: reconciles read the
  cache, never GET), patch (add/remove the cleanup finalizer with a merge patch);
- connections/status and providers/status: patch (server-side apply of status);
- providers: get/list/watch (dereference and the Provider watch);
- secrets: get (credentials, read on reconcile), list/watch (metadata-only watch for
  rotation); never written;
- events.k8s.io events: create and patch (kube-runtime's Recorder patches a repeated event).
*/}}
{{- define "connection-operator.namespacedRules" -}}
- apiGroups: ["connection-operator.dev"]
  resources: ["connections"]
  verbs: ["list", "watch", "patch"]
- apiGroups: ["connection-operator.dev"]
  resources: ["connections/status"]
  verbs: ["patch"]
- apiGroups: ["connection-operator.dev"]
  resources: ["providers"]
  verbs: ["get", "list", "watch"]
- apiGroups: ["connection-operator.dev"]
  resources: ["providers/status"]
  verbs: ["patch"]
- apiGroups: [""]
  resources: ["secrets"]
  verbs: ["get", "list", "watch"]
- apiGroups: [""]
  resources: ["configmaps"]
  verbs: ["get", "list", "watch"]
- apiGroups: ["events.k8s.io"]
  resources: ["events"]
  verbs: ["create", "patch"]
{{- end }}

{{/* ClusterProviders are cluster-scoped: always a ClusterRole, whatever is watched. */}}
{{- define "connection-operator.clusterProviderRules" -}}
- apiGroups: ["connection-operator.dev"]
  resources: ["clusterproviders"]
  verbs: ["get", "list", "watch"]
- apiGroups: ["connection-operator.dev"]
  resources: ["clusterproviders/status"]
  verbs: ["patch"]
{{- end }}

{{/*
Shards (--shards): sharding.replicas, 1 when the block is absent.
*/}}
{{- define "connection-operator.shards" -}}
{{- $sharding := .Values.sharding | default dict -}}
{{- int (default 1 $sharding.replicas) -}}
{{- end }}

{{/*
Whether the pods take Leases: leader election, or more than one shard.
*/}}
{{- define "connection-operator.usesLeases" -}}
{{- if or .Values.leaderElection.enabled (gt (int (include "connection-operator.shards" .)) 1) }}true{{ end -}}
{{- end }}
