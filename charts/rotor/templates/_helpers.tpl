{{/*
Names. fullname is the release name, or release-chart when the release
name does not contain the chart's; every object is named after it:
FULLNAME-manager, FULLNAME-propeller, ...
*/}}
{{- define "rotor.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "rotor.fullname" -}}
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

{{/* Component names: 52 characters at most, so a StatefulSet's
controller-revision-hash label (name + "-" + 10) still fits in 63. */}}
{{- define "rotor.manager.fullname" -}}
{{- printf "%s-manager" (include "rotor.fullname" . | trunc 44 | trimSuffix "-") -}}
{{- end -}}

{{- define "rotor.propeller.fullname" -}}
{{- printf "%s-propeller" (include "rotor.fullname" . | trunc 42 | trimSuffix "-") -}}
{{- end -}}

{{- define "rotor.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Labels on every object. */}}
{{- define "rotor.labels" -}}
helm.sh/chart: {{ include "rotor.chart" . }}
app.kubernetes.io/name: {{ include "rotor.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: rotor
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/* Selector labels of one component: (dict "ctx" $ "component" "manager"). */}}
{{- define "rotor.selectorLabels" -}}
app.kubernetes.io/name: {{ include "rotor.name" .ctx }}
app.kubernetes.io/instance: {{ .ctx.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "rotor.componentLabels" -}}
{{ include "rotor.labels" .ctx }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "rotor.manager.serviceAccountName" -}}
{{- if .Values.manager.serviceAccount.create -}}
{{- default (include "rotor.manager.fullname" .) .Values.manager.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.manager.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "rotor.propeller.serviceAccountName" -}}
{{- if .Values.propeller.serviceAccount.create -}}
{{- default (include "rotor.propeller.fullname" .) .Values.propeller.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.propeller.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/* An image reference: (dict "image" .Values.manager.image "ctx" $).
The tag defaults to the chart's appVersion; a digest wins over the tag. */}}
{{- define "rotor.image" -}}
{{- $img := .image -}}
{{- $repo := $img.repository -}}
{{- if $img.registry -}}
{{- $repo = printf "%s/%s" $img.registry $img.repository -}}
{{- end -}}
{{- if $img.digest -}}
{{- printf "%s@%s" $repo $img.digest -}}
{{- else -}}
{{- printf "%s:%s" $repo (default .ctx.Chart.AppVersion $img.tag) -}}
{{- end -}}
{{- end -}}

{{/* host:port for a listen flag; IPv6 literals get brackets. */}}
{{- define "rotor.hostPort" -}}
{{- $host := index . 0 -}}
{{- $port := index . 1 -}}
{{- if and (contains ":" $host) (not (hasPrefix "[" $host)) -}}
{{- printf "[%s]:%v" $host $port -}}
{{- else -}}
{{- printf "%s:%v" $host $port -}}
{{- end -}}
{{- end -}}

{{/* Seconds in a Go duration string ("1m30s" -> 90), as a float; the
schema has already checked the syntax (units h, m, s, ms). */}}
{{- define "rotor.seconds" -}}
{{- $total := 0.0 -}}
{{- range $part := regexFindAll "[0-9]+(\\.[0-9]+)?(ms|h|m|s)" . -1 -}}
{{- $num := regexFind "^[0-9]+(\\.[0-9]+)?" $part -}}
{{- $unit := trimPrefix $num $part -}}
{{- $mult := get (dict "h" 3600.0 "m" 60.0 "s" 1.0 "ms" 0.001) $unit -}}
{{- $total = addf $total (mulf (float64 $num) $mult) -}}
{{- end -}}
{{- $total -}}
{{- end -}}

{{/* The pod's terminationGracePeriodSeconds of a propeller: the drain
timeout plus 30 s (flushing traces, leaving the membership), unless set. */}}
{{- define "rotor.propeller.terminationGracePeriod" -}}
{{- $drain := include "rotor.seconds" .Values.propeller.drainTimeout | float64 | ceil | int -}}
{{- if kindIs "invalid" .Values.propeller.terminationGracePeriodSeconds -}}
{{- add $drain 30 -}}
{{- else -}}
{{- .Values.propeller.terminationGracePeriodSeconds | int -}}
{{- end -}}
{{- end -}}

{{/* Secret of a target with an inline kubeconfig. */}}
{{- define "rotor.targetSecretName" -}}
{{- printf "%s-target-%s" (include "rotor.fullname" .ctx) .target.name -}}
{{- end -}}

{{/* Whether any target is the control cluster itself ("true" or ""). */}}
{{- define "rotor.hasInClusterTarget" -}}
{{- $in := .Values.rbac.inClusterTarget -}}
{{- range .Values.targets -}}
{{- if .inCluster -}}{{- $in = true -}}{{- end -}}
{{- end -}}
{{- if $in -}}true{{- end -}}
{{- end -}}

{{/* Names of every kubeconfig Secret Rotor reads, as a JSON list: the
chart's own, the targets' existingSecrets and rbac.extraKubeconfigSecrets. */}}
{{- define "rotor.kubeconfigSecretNames" -}}
{{- $ctx := . -}}
{{- $names := list -}}
{{- range .Values.targets -}}
{{- if .kubeconfig -}}
{{- $names = append $names (include "rotor.targetSecretName" (dict "ctx" $ctx "target" .)) -}}
{{- else if .existingSecret -}}
{{- $names = append $names .existingSecret.name -}}
{{- end -}}
{{- end -}}
{{- $names = concat $names .Values.rbac.extraKubeconfigSecrets | uniq -}}
{{- toJson $names -}}
{{- end -}}

{{/* Pod and container security contexts (restricted Pod Security). */}}
{{- define "rotor.podSecurityContext" -}}
{{- toYaml .Values.podSecurityContext -}}
{{- end -}}

{{- define "rotor.containerSecurityContext" -}}
{{- toYaml .Values.containerSecurityContext -}}
{{- end -}}

{{/* Environment every container gets: its pod's name and IP, which
flags may use as $(POD_NAME) and $(POD_IP) (bindAddress: "$(POD_IP)"). */}}
{{- define "rotor.env" -}}
- name: POD_NAME
  valueFrom:
    fieldRef:
      fieldPath: metadata.name
- name: POD_IP
  valueFrom:
    fieldRef:
      fieldPath: status.podIP
{{- end -}}

{{/* etcd flags shared by the manager and the propeller. */}}
{{/*
The Secret of a component's etcd client certificate (dict "ctx" .
"component" "manager"|"propeller"): its own (its own etcd user, see rotor
etcd roles) or the shared one; empty for plaintext etcd.
*/}}
{{- define "rotor.etcdSecret" -}}
{{- $t := .ctx.Values.etcd.tls -}}
{{- if eq .component "manager" -}}
{{- $t.managerSecretName | default $t.secretName -}}
{{- else -}}
{{- $t.propellerSecretName | default $t.secretName -}}
{{- end -}}
{{- end -}}

{{/* etcd flags of a component (the same dict as rotor.etcdSecret). */}}
{{- define "rotor.etcdArgs" -}}
- --etcd-endpoints={{ join "," .ctx.Values.etcd.endpoints }}
{{- if include "rotor.etcdSecret" . }}
- --etcd-ca-file=/etc/rotor/etcd-tls/ca.crt
- --etcd-cert-file=/etc/rotor/etcd-tls/tls.crt
- --etcd-key-file=/etc/rotor/etcd-tls/tls.key
{{- end }}
{{- end -}}

{{/* Cluster prober flags, for whichever process probes. */}}
{{- define "rotor.probeArgs" -}}
- --probe-period={{ .Values.clusterProbe.period }}
- --probe-timeout={{ .Values.clusterProbe.timeout }}
- --probe-failure-threshold={{ .Values.clusterProbe.failureThreshold | int }}
- --probe-success-threshold={{ .Values.clusterProbe.successThreshold | int }}
{{- end -}}

{{/* The default topology spread of a component over nodes. */}}
{{- define "rotor.topologySpread" -}}
{{- if .values.topologySpreadConstraints -}}
{{- toYaml .values.topologySpreadConstraints -}}
{{- else -}}
- maxSkew: 1
  topologyKey: kubernetes.io/hostname
  whenUnsatisfiable: ScheduleAnyway
  labelSelector:
    matchLabels:
      {{- include "rotor.selectorLabels" (dict "ctx" .ctx "component" .component) | nindent 6 }}
{{- end -}}
{{- end -}}

{{/* Scheduling fields shared by both pod templates: (dict "ctx" $ "values" .Values.manager "component" "manager"). */}}
{{- define "rotor.podScheduling" -}}
{{- with .ctx.Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .values.priorityClassName }}
priorityClassName: {{ . }}
{{- end }}
{{- with .values.nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .values.tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .values.affinity }}
affinity:
  {{- toYaml . | nindent 2 }}
{{- end }}
topologySpreadConstraints:
  {{- include "rotor.topologySpread" . | nindent 2 }}
{{- end -}}

{{/* A PodDisruptionBudget count: an integer (values files give floats) or
a percentage string. */}}
{{- define "rotor.intOrString" -}}
{{- if kindIs "string" . -}}{{ . | quote }}{{- else -}}{{ . | int }}{{- end -}}
{{- end -}}

{{/* The admission webhook: on when sharded (the managers serve it) and enabled. */}}
{{- define "rotor.webhook.enabled" -}}
{{- if and .Values.sharded .Values.manager.webhook.enabled }}true{{ end }}
{{- end }}

{{/* The webhook's Service and serving Secret. */}}
{{- define "rotor.webhook.fullname" -}}
{{ include "rotor.manager.fullname" . }}-webhook
{{- end }}

{{/* The admin API's TLS Secret: the user's, or the chart's own (admin-tls.yaml). */}}
{{- define "rotor.admin.tlsSecret" -}}
{{ .Values.manager.admin.tls.secretName | default (printf "%s-admin-tls" (include "rotor.manager.fullname" .)) }}
{{- end }}
