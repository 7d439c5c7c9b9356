{{/* Names and labels. */}}
{{- define "defenderbot.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "defenderbot.fullname" -}}
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

{{- define "defenderbot.selectorLabels" -}}
app.kubernetes.io/name: {{ include "defenderbot.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "defenderbot.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "defenderbot.selectorLabels" . }}
app.kubernetes.io/version: {{ include "defenderbot.tag" . | trunc 63 | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{- define "defenderbot.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "defenderbot.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "defenderbot.tag" -}}
{{- default .Chart.AppVersion .Values.image.tag -}}
{{- end -}}

{{/* repository:tag, or repository@digest when a digest pins the image. */}}
{{- define "defenderbot.image" -}}
{{- if .Values.image.digest -}}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" .Values.image.repository (include "defenderbot.tag" .) -}}
{{- end -}}
{{- end -}}

{{- define "defenderbot.secretName" -}}
{{- default (include "defenderbot.fullname" .) .Values.secrets.existingSecret -}}
{{- end -}}

{{/* Whether a Service exists: Slack's requests (http mode) or the scrape. */}}
{{- define "defenderbot.service" -}}
{{- if or (eq .Values.slack.mode "http") .Values.metrics.serviceMonitor.enabled -}}true{{- end -}}
{{- end -}}

{{/* The SQLite data directory: the image's working directory. */}}
{{- define "defenderbot.dataDir" -}}/var/lib/defenderbot{{- end -}}

{{/*
The configuration file: .Values.config with what the chart owns (listen,
store) set from the chart's values.
*/}}
{{- define "defenderbot.config" -}}
{{- $cfg := deepCopy .Values.config -}}
{{- $store := dict "driver" .Values.store.driver -}}
{{- if eq .Values.store.driver "sqlite" -}}
{{- $_ := set $store "dsn" (printf "%s/defenderbot.db" (include "defenderbot.dataDir" .)) -}}
{{- end -}}
{{- $_ := set $cfg "store" $store -}}
{{- $_ := set $cfg "listen" (printf ":%d" (int .Values.containerPort)) -}}
{{- toYaml $cfg -}}
{{- end -}}

{{/*
Refuse what cannot work, with the value to change in the message.
*/}}
{{- define "defenderbot.validate" -}}
{{- if not (has .Values.store.driver (list "sqlite" "postgres")) -}}
{{- fail (printf "store.driver must be sqlite or postgres (got %q)" .Values.store.driver) -}}
{{- end -}}
{{- if and (eq .Values.store.driver "sqlite") (gt (int .Values.replicaCount) 1) -}}
{{- fail (printf "replicaCount %d needs store.driver postgres: SQLite serves one replica only" (int .Values.replicaCount)) -}}
{{- end -}}
{{- if not (has .Values.slack.mode (list "http" "socket")) -}}
{{- fail (printf "slack.mode must be http or socket (got %q)" .Values.slack.mode) -}}
{{- end -}}
{{- if and .Values.ingress.enabled (ne .Values.slack.mode "http") -}}
{{- fail "ingress.enabled needs slack.mode http: in Socket Mode Slack is not calling the pod" -}}
{{- end -}}
{{- $c := .Values.config -}}
{{- range $section, $keys := dict "defender" (list "app_secret" "app_secret_file") "slack" (list "bot_token" "bot_token_file" "signing_secret" "signing_secret_file" "app_token" "app_token_file") -}}
{{- range $keys -}}
{{- if hasKey (get $c $section | default dict) . -}}
{{- fail (printf "config.%s.%s: secrets do not belong in the ConfigMap; set them under secrets (or in secrets.existingSecret)" $section .) -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- range list "password" "password_file" "token" "token_file" -}}
{{- if hasKey (dig "iocs" "taxii" dict $c) . -}}
{{- fail (printf "config.iocs.taxii.%s: secrets do not belong in the ConfigMap; set secrets.taxiiPassword or secrets.taxiiToken (or in secrets.existingSecret)" .) -}}
{{- end -}}
{{- end -}}
{{- if hasKey $c "store" -}}
{{- fail "config.store is set by the chart: use store.driver (and secrets.storeDSN for postgres)" -}}
{{- end -}}
{{- if hasKey $c "listen" -}}
{{- fail "config.listen is set by the chart: use containerPort" -}}
{{- end -}}
{{- $_ := required "config.defender.tenant_id is required (the Azure directory (tenant) ID)" $c.defender.tenant_id -}}
{{- $_ := required "config.defender.app_id is required (the Azure application (client) ID)" $c.defender.app_id -}}
{{- $_ := required "config.slack.approval_channel is required (a channel ID such as C0123ABCD)" $c.slack.approval_channel -}}
{{- if not $c.approval.approvers -}}
{{- fail "config.approval.approvers must list at least one Slack user or user-group ID" -}}
{{- end -}}
{{- if not .Values.secrets.existingSecret -}}
{{- $s := .Values.secrets -}}
{{- $_ := required "secrets.azureClientSecret is required (or secrets.existingSecret)" $s.azureClientSecret -}}
{{- $_ := required "secrets.slackBotToken is required (or secrets.existingSecret)" $s.slackBotToken -}}
{{- if eq .Values.slack.mode "http" -}}
{{- $_ := required "secrets.slackSigningSecret is required in slack.mode http (or secrets.existingSecret)" $s.slackSigningSecret -}}
{{- else -}}
{{- $_ := required "secrets.slackAppToken is required in slack.mode socket (or secrets.existingSecret)" $s.slackAppToken -}}
{{- end -}}
{{- if eq .Values.store.driver "postgres" -}}
{{- $_ := required "secrets.storeDSN is required with store.driver postgres (or secrets.existingSecret)" $s.storeDSN -}}
{{- end -}}
{{- end -}}
{{- end -}}
