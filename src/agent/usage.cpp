#include "bulkhead/agent/config.h"

namespace bulkhead::agent {

// Follows the man page, packaging/man/bulkhead-agent.8 (a unit test checks
// that every flag is in both).
std::string_view agentUsage() {
  return R"(usage: bulkhead-agent [--config FILE] [FLAGS]

Puts the host's policy into the nftables table inet <table> and keeps it
there; serves the gRPC API; exports denied flows. Every flag is also a key of
the config file (without dashes); flags win. See bulkhead-agent(8).

  --config FILE                 YAML settings (the package ships /etc/bulkhead/agent.yaml)
  --listen ADDR                 unix:///path or tcp://host:port, repeatable
                                (default unix:///run/bulkhead/agent.sock)
  --socket-group NAME           group of the unix socket (mode 0660)
  --tls-cert FILE --tls-key FILE --tls-client-ca FILE
                                TLS of tcp:// listeners (client certificates required)
  --tls-allowed-names NAME,...  only clients whose certificate names one of these
                                (DNS/URI subjectAltName or CN); others PERMISSION_DENIED
  --state-dir DIR               saved state, put back on start (default /var/lib/bulkhead)
  --table NAME                  the table inet NAME (default bulkhead)
  --log-group N                 NFLOG group of denied flows, 0-65535 (default 1771)
  --log-rate N                  kernel log budget per workload interface, events/s
                                (default 100)
  --flow-workload-rate N        exported events per workload, events/s (default 200)
  --syslog TARGET               unix:///dev/log, udp://H:P, tcp://H:P, tls://H:P or
                                journald, repeatable (default: journald, else /dev/log)
  --syslog-tls-ca FILE --syslog-tls-cert FILE --syslog-tls-key FILE
                                TLS of tls:// targets
  --flow-format FORMAT          rfc5424, json or cef (default rfc5424)
  --flow-summary-seconds N      period of summary events, 1-86400 (default 60)
  --policies DIR                static policy, applied at start and on SIGHUP
                                (ignored with --controller)
  --controller URL,...          follow bulkhead-controller: unix:///path or
                                tcp://host:port (TLS), tried in order, repeatable
  --controller-ca FILE --controller-cert FILE --controller-key FILE
                                TLS of tcp:// controllers: their CA, this agent's
                                client certificate and key
  --host NAME                   this agent's name in the fleet (default: hostname)
  --workload-interfaces PATTERN,...
                                drop interfaces of these names (veth*, vnet*) that no
                                workload registered (default: none, untouched)
  --resync-seconds N            period of the check of the table by content, 0-86400
                                (default 30)
  --drift-events true|false     diagnostic: false runs without the nftables event
                                monitor (default true)
  --scan-detection true|false   anomaly events for sweeps and port scans (default true)
  --auto-quarantine             quarantine a workload caught scanning (default off)
  --scan-hosts N                distinct denied addresses on one port = sweep (default 20)
  --scan-ports N                distinct denied ports on one address = port scan (default 15)
  --scan-window N               sliding window of the detection, seconds (default 60)
  --quarantine-seconds N        automatic quarantine, doubling when caught again within
                                a day (default 1800)
  --max-bundle-bytes N          largest accepted bundle (default 67108864)
  --help, --version

Signals: SIGHUP re-reads --policies; SIGTERM and SIGINT stop the agent and
leave its table in the kernel (fail-closed).
exit codes: 0 stopped by a signal, 1 runtime failure, 2 bad flag, config or --policies.
)";
}

}  // namespace bulkhead::agent
