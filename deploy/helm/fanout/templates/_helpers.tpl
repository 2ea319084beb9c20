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

{{/* Protected workloads, comma separated: the configured list plus fanout's own workloads. */}}
{{- define "fanout.protected" -}}
{{- $own := list (printf "DaemonSet/%s/fanout-agent" .Release.Namespace) (printf "Deployment/%s/fanout-aggregator" .Release.Namespace) -}}
{{ join "," (concat .Values.protected $own | uniq) }}
{{- end -}}

{{/* Secrets of the mTLS material: the aggregators' (ca.crt, server.crt, server.key) and the agents' (ca.crt, one
<node>.crt/<node>.key pair per node). */}}
{{- define "fanout.serverTLSSecret" -}}
{{ .Values.tls.existingServerSecret | default "fanout-tls-server" }}
{{- end -}}
{{- define "fanout.agentTLSSecret" -}}
{{ .Values.tls.existingAgentSecret | default "fanout-tls-agents" }}
{{- end -}}

{{/* Name of the Secret holding the admin token (key token). */}}
{{- define "fanout.adminSecret" -}}
{{ .Values.auth.admin.existingSecret | default "fanout-admin" }}
{{- end -}}

{{/* A token: the given value, else the one already stored in Secret <name> key token, else a random one. */}}
{{- define "fanout.token" -}}
{{- $existing := lookup "v1" "Secret" .ctx.Release.Namespace .name -}}
{{- $tok := .value | default (dig "data" "token" "" $existing | b64dec) | default (randAlphaNum 48) -}}
{{- if or (lt (len $tok) 16) (regexMatch "\\s" $tok) -}}
{{- fail (printf "%s: the token must have at least 16 characters and no whitespace" .what) -}}
{{- end -}}
{{ $tok }}
{{- end -}}

{{/* Whether the aggregator needs API credentials: remediation, the placement watch, or scraping the API server. */}}
{{- define "fanout.aggregatorUsesAPI" -}}
{{- if or .Values.aggregator.remediation.enabled .Values.aggregator.placement.watch (not .Values.aggregator.headroom.prometheusURL) -}}
true
{{- end -}}
{{- end -}}

{{/* The aggregator's --headroom.* source flag: explicit URLs, Prometheus, or in-cluster discovery. */}}
{{- define "fanout.headroomSource" -}}
{{- $h := .Values.aggregator.headroom -}}
{{- if and $h.apiserverURLs $h.prometheusURL -}}
{{- fail "set aggregator.headroom.apiserverURLs or aggregator.headroom.prometheusURL, not both" -}}
{{- else if $h.prometheusURL -}}
--headroom.prometheus-url={{ $h.prometheusURL }}
{{- else if $h.apiserverURLs -}}
--headroom.apiserver-url={{ join "," $h.apiserverURLs }}
{{- else -}}
--headroom.apiserver-url=in-cluster
{{- end -}}
{{- end -}}
