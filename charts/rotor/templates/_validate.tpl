{{/*
Checks that need more than one value, or arithmetic on durations, which
values.schema.json cannot express. Each failure says which value to change.
Included once, from validate.yaml.
*/}}
{{- define "rotor.validate" -}}
{{- $v := .Values -}}
{{- $p := $v.propeller -}}
{{- if and $v.sharded (not $v.etcd.endpoints) -}}
{{- fail "etcd.endpoints: sharded installs keep the shard map and memberships in etcd: give at least one endpoint (or set sharded: false)" -}}
{{- end -}}
{{- $t := $v.etcd.tls -}}
{{- if and (not $t.secretName) (ne (not $t.managerSecretName) (not $t.propellerSecretName)) -}}
{{- fail "etcd.tls: only one of managerSecretName and propellerSecretName is set and secretName is empty: the other component would have no client certificate; set both (or secretName for the other)" -}}
{{- end -}}
{{- if and (not $v.sharded) $p.autoscaling.enabled -}}
{{- fail "propeller.autoscaling.enabled: autoscaling is done by rotor-manager, which runs only when sharded: true" -}}
{{- end -}}
{{- if gt (int $p.autoscaling.minReplicas) (int $p.autoscaling.maxReplicas) -}}
{{- fail (printf "propeller.autoscaling: minReplicas (%v) must not exceed maxReplicas (%v)" $p.autoscaling.minReplicas $p.autoscaling.maxReplicas) -}}
{{- end -}}
{{- if and $v.sharded (gt (int $p.replicas) (int $v.partitions)) -}}
{{- fail (printf "propeller.replicas (%v) exceeds partitions (%v): a replica without a partition does nothing" $p.replicas $v.partitions) -}}
{{- end -}}
{{- if and $p.autoscaling.enabled (gt (int $p.autoscaling.maxReplicas) (int $v.partitions)) -}}
{{- fail (printf "propeller.autoscaling.maxReplicas (%v) exceeds partitions (%v): a replica without a partition does nothing" $p.autoscaling.maxReplicas $v.partitions) -}}
{{- end -}}
{{- if lt (include "rotor.seconds" $p.leaseTTL | float64) 2.0 -}}
{{- fail (printf "propeller.leaseTTL %s: must be at least 2s" $p.leaseTTL) -}}
{{- end -}}
{{- if lt (include "rotor.seconds" $v.manager.sessionTTL | float64) 2.0 -}}
{{- fail (printf "manager.sessionTTL %s: must be at least 2s" $v.manager.sessionTTL) -}}
{{- end -}}
{{- if lt (include "rotor.seconds" $p.resync | float64) 1.0 -}}
{{- fail (printf "propeller.resync %s: must be at least 1s" $p.resync) -}}
{{- end -}}
{{- if le (include "rotor.seconds" $p.http.timeout | float64) 0.0 -}}
{{- fail (printf "propeller.http.timeout %s: must be positive" $p.http.timeout) -}}
{{- end -}}
{{- if not (kindIs "invalid" $p.terminationGracePeriodSeconds) -}}
{{- $drain := include "rotor.seconds" $p.drainTimeout | float64 -}}
{{- if le (float64 $p.terminationGracePeriodSeconds) $drain -}}
{{- fail (printf "propeller.terminationGracePeriodSeconds (%v) must be longer than propeller.drainTimeout (%s), or the kubelet kills a replica before it has handed its partitions over; leave it null for drainTimeout + 30s" $p.terminationGracePeriodSeconds $p.drainTimeout) -}}
{{- end -}}
{{- end -}}
{{- $admin := $v.manager.admin -}}
{{- if and $admin.bindAddress (not $admin.tls.secretName) -}}
{{- $a := $admin.bindAddress -}}
{{- if not (or (hasPrefix "127." $a) (eq $a "::1") (eq $a "localhost") (hasPrefix "$(" $a)) -}}
{{- fail (printf "manager.admin.bindAddress %s is not a loopback address: set manager.admin.tls.secretName (rotor-manager serves the admin API off loopback only with TLS)" $a) -}}
{{- end -}}
{{- end -}}
{{- $seen := dict -}}
{{- range $i, $t := $v.targets -}}
{{- if hasKey $seen $t.name -}}
{{- fail (printf "targets[%d].name %q: used twice; Cluster names are unique" $i $t.name) -}}
{{- end -}}
{{- $_ := set $seen $t.name true -}}
{{- end -}}
{{- end -}}
