{{/* Names and labels. */}}
{{- define "agent-failover.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "agent-failover.fullname" -}}
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

{{- define "agent-failover.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
app.kubernetes.io/name: {{ include "agent-failover.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: agent-failover
{{- end -}}

{{- define "agent-failover.monitorSelector" -}}
app.kubernetes.io/name: {{ include "agent-failover.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: monitor
{{- end -}}

{{- define "agent-failover.agentSelector" -}}
app.kubernetes.io/name: {{ include "agent-failover.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: agent
{{- end -}}

{{- define "agent-failover.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "agent-failover.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "agent-failover.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}

{{/*
The monitor's Kubernetes API permissions: none today (it talks only to Kafka), so the Role is
empty and no token is mounted. A YAML list of PolicyRule objects; when it is not empty the pods
mount their ServiceAccount token.
*/}}
{{- define "agent-failover.monitorRules" -}}
[]
{{- end -}}

{{/*
Settings passed as AGENT_FAILOVER_<VARIABLE>, as `valuesKey: VARIABLE`. A new setting is one line
here, one in values.yaml and one property in values.schema.json. A null or empty value is not
passed: the program's own default applies.
*/}}
{{- define "agent-failover.topicVariables" -}}
prefix: TOPIC_PREFIX
agentPartitions: AGENT_PARTITIONS
taskPartitions: TASK_PARTITIONS
checkpointPartitions: CHECKPOINT_PARTITIONS
replicationFactor: REPLICATION_FACTOR
{{- end -}}

{{- define "agent-failover.monitorVariables" -}}
heartbeatTimeout: HEARTBEAT_TIMEOUT
degradedAfter: DEGRADED_AFTER
tickInterval: TICK_INTERVAL
gracePeriod: GRACE_PERIOD
stuckAfter: STUCK_AFTER
appId: MONITOR_APP_ID
sessionTimeout: MONITOR_SESSION_TIMEOUT
metricsHost: METRICS_HOST
metricsPort: METRICS_PORT
webPort: WEB_PORT
dataDir: MONITOR_DATA_DIR
logLevel: LOG_LEVEL
logFormat: LOG_FORMAT
{{- end -}}

{{- define "agent-failover.agentVariables" -}}
capacity: CAPACITY
heartbeatInterval: HEARTBEAT_INTERVAL
checkpointPolicy: CHECKPOINT_POLICY
pool: POOL
handoffWait: HANDOFF_WAIT
{{- end -}}

{{/* env entries for the settings of `values` named by `variables` (a YAML map, above). */}}
{{- define "agent-failover.settingsEnv" -}}
{{- $values := .values -}}
{{- range $key, $variable := fromYaml .variables }}
{{- $value := get $values $key }}
{{- if and (not (kindIs "invalid" $value)) (ne (toString $value) "") }}
- name: AGENT_FAILOVER_{{ $variable }}
  value: {{ $value | toString | quote }}
{{- end }}
{{- end }}
{{- end -}}

{{/* Where the Kafka TLS Secret is mounted. */}}
{{- define "agent-failover.tlsDir" -}}
/etc/agent-failover/kafka-tls
{{- end -}}

{{/* The broker connection and topics, shared by the monitor and the example agent. */}}
{{- define "agent-failover.kafkaEnv" -}}
- name: KAFKA_BOOTSTRAP_SERVERS
  value: {{ .Values.kafka.bootstrapServers | quote }}
- name: AGENT_FAILOVER_KAFKA_SECURITY_PROTOCOL
  value: {{ .Values.kafka.securityProtocol | quote }}
{{- with .Values.kafka.sasl }}
{{- if .mechanism }}
- name: AGENT_FAILOVER_KAFKA_SASL_MECHANISM
  value: {{ .mechanism | quote }}
- name: AGENT_FAILOVER_KAFKA_SASL_USERNAME
  valueFrom:
    secretKeyRef:
      name: {{ .existingSecret }}
      key: {{ .usernameKey }}
- name: AGENT_FAILOVER_KAFKA_SASL_PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ .existingSecret }}
      key: {{ .passwordKey }}
{{- end }}
{{- end }}
{{- with .Values.kafka.tls }}
{{- if .existingSecret }}
{{- if .caKey }}
- name: AGENT_FAILOVER_KAFKA_SSL_CA_LOCATION
  value: {{ printf "%s/%s" (include "agent-failover.tlsDir" $) .caKey | quote }}
{{- end }}
{{- if .certKey }}
- name: AGENT_FAILOVER_KAFKA_SSL_CERTIFICATE_LOCATION
  value: {{ printf "%s/%s" (include "agent-failover.tlsDir" $) .certKey | quote }}
{{- end }}
{{- if .keyKey }}
- name: AGENT_FAILOVER_KAFKA_SSL_KEY_LOCATION
  value: {{ printf "%s/%s" (include "agent-failover.tlsDir" $) .keyKey | quote }}
{{- end }}
{{- if .keyPasswordKey }}
- name: AGENT_FAILOVER_KAFKA_SSL_KEY_PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ .existingSecret }}
      key: {{ .keyPasswordKey }}
{{- end }}
{{- end }}
{{- end }}
{{- include "agent-failover.settingsEnv" (dict "values" .Values.topics "variables" (include "agent-failover.topicVariables" .)) }}
{{- end -}}

{{/* The fleet's signing key from its Secret: the monitor and every agent hold the same one. */}}
{{- define "agent-failover.signingKeyEnv" -}}
{{- with .Values.monitor.signingKey }}
{{- if .existingSecret }}
- name: AGENT_FAILOVER_SIGNING_KEY
  valueFrom:
    secretKeyRef:
      name: {{ .existingSecret }}
      key: {{ .key }}
{{- end }}
{{- end }}
{{- end -}}

{{/* The TLS Secret as a volume and its mount, when one is configured. */}}
{{- define "agent-failover.tlsVolume" -}}
{{- if .Values.kafka.tls.existingSecret }}
- name: kafka-tls
  secret:
    secretName: {{ .Values.kafka.tls.existingSecret }}
    defaultMode: 0440
{{- end }}
{{- end -}}

{{- define "agent-failover.tlsVolumeMount" -}}
{{- if .Values.kafka.tls.existingSecret }}
- name: kafka-tls
  mountPath: {{ include "agent-failover.tlsDir" . }}
  readOnly: true
{{- end }}
{{- end -}}

{{/* Pod and container security settings: non-root, read-only root, no privilege. */}}
{{- define "agent-failover.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: 10001
runAsGroup: 10001
fsGroup: 10001
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{- define "agent-failover.containerSecurityContext" -}}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
privileged: false
capabilities:
  drop:
    - ALL
{{- end -}}

{{/* The alert's runbook address: the base, `#`, and the alert's section anchor. */}}
{{- define "agent-failover.runbook" -}}
{{- printf "%s#%s" .root.Values.prometheusRule.runbookBaseUrl (lower .alert) -}}
{{- end -}}
