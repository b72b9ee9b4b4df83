{{/* Chart name, overridable. */}}
{{- define "bbapi.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Full name prefix of every object: <release>-<chart>, or the release name if it already contains the chart name. */}}
{{- define "bbapi.fullname" -}}
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

{{- define "bbapi.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels of every object the chart renders. */}}
{{- define "bbapi.labels" -}}
helm.sh/chart: {{ include "bbapi.chart" . }}
app.kubernetes.io/name: {{ include "bbapi.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/part-of: bbapi
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{/* Operator pod selector: immutable, identity only. */}}
{{- define "bbapi.operatorSelectorLabels" -}}
app.kubernetes.io/name: {{ include "bbapi.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: operator
{{- end }}

{{- define "bbapi.operatorLabels" -}}
{{ include "bbapi.labels" . }}
app.kubernetes.io/component: operator
{{- end }}

{{- define "bbapi.operatorName" -}}
{{- printf "%s-operator" (include "bbapi.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "bbapi.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "bbapi.operatorName" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* The one image every bbapi process runs. */}}
{{- define "bbapi.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}

{{/* The BuildBuddyAPI's name: at most 45 characters (the CRD's rule: its StatefulSets get 7 more). */}}
{{- define "bbapi.instanceName" -}}
{{- default (include "bbapi.fullname" .) .Values.instance.name | trunc 45 | trimSuffix "-" }}
{{- end }}

{{/* Where the BuildBuddyAPI goes: the namespace the operator watches, else the release's. */}}
{{- define "bbapi.instanceNamespace" -}}
{{- default .Release.Namespace .Values.operator.watchNamespace }}
{{- end }}
