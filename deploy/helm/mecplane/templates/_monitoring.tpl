{{/*
The optional ServiceMonitor (prometheus-operator) scraping /metrics on the API port, and the
optional NetworkPolicy: the API port only from .v.networkPolicy.apiFrom (peers; when empty,
from nowhere), the ports in .open (list of {port, protocol}) from anywhere.
*/}}
{{- define "mecplane.monitoring" -}}
{{- if .v.serviceMonitor.enabled }}
---
apiVersion: monitoring.coreos.com/v1
kind: ServiceMonitor
metadata:
  name: {{ .name }}
  labels:
    {{- include "mecplane.labels" .ctx | nindent 4 }}
    {{- with .v.serviceMonitor.labels }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
spec:
  selector:
    matchLabels:
      {{- include "mecplane.selector" .ctx | nindent 6 }}
  endpoints:
    - port: http
      path: /metrics
      interval: {{ .v.serviceMonitor.interval }}
{{- end }}
{{- if .v.networkPolicy.enabled }}
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata:
  name: {{ .name }}
  labels:
    {{- include "mecplane.labels" .ctx | nindent 4 }}
spec:
  podSelector:
    matchLabels:
      {{- include "mecplane.selector" .ctx | nindent 6 }}
  policyTypes: [Ingress]
  ingress:
    {{- with .v.networkPolicy.apiFrom }}
    - ports:
        - port: http
          protocol: TCP
      from:
        {{- toYaml . | nindent 8 }}
    {{- end }}
    {{- with .open }}
    - ports:
        {{- toYaml . | nindent 8 }}
    {{- end }}
{{- end }}
{{- end -}}
