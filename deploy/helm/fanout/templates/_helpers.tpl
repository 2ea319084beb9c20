{{/* Common labels. */}}
{{- define "fanout.labels" -}}
app.kubernetes.io/part-of: fanout
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{- define "fanout.image" -}}
{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}
{{- end -}}

{{/* Static aggregator addresses the agents dial (no DNS). */}}
{{- define "fanout.aggregatorAddresses" -}}
{{- if .Values.aggregator.addresses -}}
{{ join "," .Values.aggregator.addresses }}
{{- else if .Values.aggregator.service.clusterIP -}}
{{ .Values.aggregator.service.clusterIP }}:{{ .Values.aggregator.grpcPort }}
{{- else -}}
{{ fail "set aggregator.addresses or aggregator.service.clusterIP: agents reach aggregators by static address" }}
{{- end -}}
{{- end -}}
