v7Z
web.yamlNapiVersion: bulkhead/v1
kind: App
metadata:
  name: web
spec:
  mode: enforce
"0
web-1webvweb1"
192.0.2.10*
tierfront8"/
web-2webvweb2"2001:db8::28Bc0ffee/eth0*2026-11-28T11:00:00Z2web-2:
web-2manualÀö×0