{{/*
Names, labels and image references shared by every template.
*/}}

{{- define "palisade.fullname" -}}
{{- default "palisade" .Values.fullnameOverride | trunc 40 | trimSuffix "-" -}}
{{- end -}}

{{- define "palisade.controller.name" -}}
{{- printf "%s-controller" (include "palisade.fullname" .) -}}
{{- end -}}

{{- define "palisade.agent.name" -}}
{{- printf "%s-agent" (include "palisade.fullname" .) -}}
{{- end -}}

{{- define "palisade.cleanup.name" -}}
{{- printf "%s-cleanup" (include "palisade.fullname" .) -}}
{{- end -}}

{{- define "palisade.leaseName" -}}
{{- default (include "palisade.controller.name" .) .Values.controller.leaseName -}}
{{- end -}}

{{/* Labels on every object. */}}
{{- define "palisade.labels" -}}
app.kubernetes.io/name: palisade
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{/* Selector labels of one component: (dict "root" $ "component" "agent"). */}}
{{- define "palisade.selectorLabels" -}}
app.kubernetes.io/name: palisade
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{/* Image of one component: (dict "root" $ "image" .Values.agent.image). */}}
{{- define "palisade.image" -}}
{{- $tag := default .root.Chart.AppVersion .root.Values.image.tag -}}
{{- if .root.Values.image.registry -}}
{{- printf "%s/%s:%s" .root.Values.image.registry .image.repository $tag -}}
{{- else -}}
{{- printf "%s:%s" .image.repository $tag -}}
{{- end -}}
{{- end -}}

{{- define "palisade.agent.serviceAccount" -}}
{{- printf "system:serviceaccount:%s:%s" .Release.Namespace (include "palisade.agent.name" .) -}}
{{- end -}}

{{/* The agent's fixed paths (the emergency commands in the docs name them). */}}
{{- define "palisade.agent.pinPath" -}}/sys/fs/bpf/palisade{{- end -}}

{{/* The common part of the cleanup Job's kubectl containers. */}}
{{- define "palisade.cleanup.kubectlContainer" -}}
imagePullPolicy: IfNotPresent
command: [kubectl]
env:
  # kubectl's discovery cache.
  - name: HOME
    value: /tmp
volumeMounts:
  - name: tmp
    mountPath: /tmp
securityContext:
  privileged: false
  allowPrivilegeEscalation: false
  readOnlyRootFilesystem: true
  runAsNonRoot: true
  capabilities:
    drop:
      - ALL
resources:
  requests:
    cpu: 10m
    memory: 32Mi
  limits:
    memory: 128Mi
{{- end -}}
