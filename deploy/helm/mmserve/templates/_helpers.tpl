{{/* Names: the usual Helm conventions, cut to 63 characters (DNS labels). */}}
{{- define "mmserve.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "mmserve.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "mmserve.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "mmserve.selectorLabels" -}}
app.kubernetes.io/name: {{ include "mmserve.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "mmserve.labels" -}}
helm.sh/chart: {{ include "mmserve.chart" . }}
{{ include "mmserve.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{- define "mmserve.image" -}}
{{- printf "%s:%s" .Values.image.repository (.Values.image.tag | default .Chart.AppVersion) -}}
{{- end -}}

{{- define "mmserve.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "mmserve.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/* The Secret holding the keys: the user's, or the chart's (made only when a key is given). */}}
{{- define "mmserve.secretName" -}}
{{- default (include "mmserve.fullname" .) .Values.auth.existingSecret -}}
{{- end -}}

{{- define "mmserve.hasKeys" -}}
{{- if or .Values.auth.existingSecret .Values.auth.apiKey .Values.auth.adminKey -}}true{{- end -}}
{{- end -}}

{{- define "mmserve.scheme" -}}
{{- if .Values.tls.enabled -}}HTTPS{{- else -}}HTTP{{- end -}}
{{- end -}}

{{/* The pod's grace period: above the pre-stop wait plus the drain, or the render fails. */}}
{{- define "mmserve.terminationGracePeriodSeconds" -}}
{{- $floor := add .Values.preStopSleepSeconds .Values.server.drainTimeoutSeconds -}}
{{- if kindIs "invalid" .Values.terminationGracePeriodSeconds -}}
{{- add $floor 15 -}}
{{- else if le (int .Values.terminationGracePeriodSeconds) (int $floor) -}}
{{- fail (printf "terminationGracePeriodSeconds (%v) must be above preStopSleepSeconds + server.drainTimeoutSeconds (%v), or the kubelet kills mmserve mid-drain" .Values.terminationGracePeriodSeconds $floor) -}}
{{- else -}}
{{- .Values.terminationGracePeriodSeconds -}}
{{- end -}}
{{- end -}}

{{/*
The server container's arguments, one per line (deployment.yaml quotes each). With a models
file from the ConfigMap the arguments name the `serve` command in full (the image's entrypoint
runs a first argument that is not a flag as the mmserve command); without one they are flags
only, added to what the entrypoint finds in /models.
*/}}
{{- define "mmserve.args" -}}
{{- $args := list -}}
{{- if .Values.models.file -}}
{{- $args = concat $args (list "serve" "--models" "/etc/mmserve/models/models.toml" "--host" "0.0.0.0" "--port" (toString .Values.server.port)) -}}
{{- end -}}
{{- $args = concat $args (list "--drain-timeout" (toString .Values.server.drainTimeoutSeconds)) -}}
{{- if .Values.auth.metricsAuth -}}
{{- $args = append $args "--metrics-auth" -}}
{{- end -}}
{{- if .Values.tls.enabled -}}
{{- $args = concat $args (list "--tls-cert" "/etc/mmserve/tls/tls.crt" "--tls-key" "/etc/mmserve/tls/tls.key") -}}
{{- end -}}
{{- range $flag := keys .Values.server.flags | sortAlpha -}}
{{- $value := get $.Values.server.flags $flag -}}
{{- if has $flag (list "host" "port" "drain-timeout" "models" "db" "api-key" "admin-key" "tls-cert" "tls-key" "metrics-auth") -}}
{{- fail (printf "server.flags.%s: set it through the chart's own values (server.port, server.drainTimeoutSeconds, models.file, auth.*, tls.*), which the probes, Service and Secret follow" $flag) -}}
{{- end -}}
{{- if kindIs "bool" $value -}}
{{- if $value -}}{{- $args = append $args (printf "--%s" $flag) -}}{{- end -}}
{{- else if kindIs "slice" $value -}}
{{- range $v := $value -}}{{- $args = concat $args (list (printf "--%s" $flag) (toString $v)) -}}{{- end -}}
{{- else -}}
{{- $args = concat $args (list (printf "--%s" $flag) (toString $value)) -}}
{{- end -}}
{{- end -}}
{{- range $a := .Values.server.extraArgs -}}
{{- $args = append $args (toString $a) -}}
{{- end -}}
{{- toJson $args -}}
{{- end -}}

{{/* What the pod template's checksum annotations cover: a change rolls the pods. */}}
{{- define "mmserve.configChecksum" -}}
{{- include (print $.Template.BasePath "/configmap.yaml") . | sha256sum -}}
{{- end -}}
