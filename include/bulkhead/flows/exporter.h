// Exporters of the denied-flow feed. Each has its own bounded queue and its
// own thread: offer() never blocks, a slow or dead target never stalls the
// NFLOG reader or the other exporters, and every event an exporter could not
// deliver is counted.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "bulkhead/common/endpoint.h"
#include "bulkhead/common/result.h"
#include "bulkhead/flows/event.h"
#include "bulkhead/flows/format.h"

namespace bulkhead::flows {

struct ExporterStats {
  uint64_t delivered = 0;          // events written to the target
  uint64_t deliveredAttempts = 0;  // sum of their `count`
  uint64_t droppedQueueFull = 0;   // attempts (sum of count) refused because the queue was full
  uint64_t droppedTargetDown = 0;  // attempts lost because the target failed
  uint64_t reconnects = 0;         // successful connects after the first (tcp, tls)
  uint64_t sendErrors = 0;         // failed writes/connects (each may drop or requeue)
  size_t queued = 0;               // events waiting in the queue now
  bool connected = false;
  std::string lastError;  // the last failure, for `status` ("" if none yet)
};

class Exporter {
 public:
  virtual ~Exporter() = default;
  // Queues an event; false (counted) when the queue is full. Never blocks.
  virtual bool offer(const FlowEvent& e) = 0;
  virtual ExporterStats stats() const = 0;
  virtual std::string name() const = 0;  // the target as configured
  // Waits up to ms for the queue to drain (tests, shutdown); true if it did.
  virtual bool flush(int ms) = 0;
};

struct ExporterOptions {
  Format format = Format::kRfc5424;
  FormatOptions formatOptions;
  size_t queueCapacity = 65536;
  // tcp:// with TLS (RFC 5425): verify the server against this CA bundle.
  std::string tlsCa;
  std::string tlsCert, tlsKey;  // optional client certificate
  // journald: the native protocol socket (tests point it elsewhere).
  std::string journaldSocket = "/run/systemd/journal/socket";
  // tcp/tls: connect (and TLS handshake) timeout, reconnect backoff (doubling
  // from initial to max, +-20% jitter), how long a stuck write may take
  // before the connection is declared dead.
  int connectTimeoutMs = 3000;
  int backoffInitialMs = 100;
  int backoffMaxMs = 5000;
  int writeTimeoutMs = 10000;
  // Destructor: how long the worker may keep delivering what is queued.
  int shutdownMs = 1000;
};

// What a flow target (--syslog) may be.
inline constexpr common::Schemes kFlowTargetSchemes{common::Scheme::kUnix, common::Scheme::kUdp,
                                                    common::Scheme::kTcp, common::Scheme::kTls,
                                                    common::Scheme::kJournald};

// Targets: unix:///dev/log (datagram), udp://HOST:PORT, tcp://HOST:PORT
// (octet-counting, reconnect with backoff), tls://HOST:PORT (tcp + TLS),
// journald (native protocol on options.journaldSocket); the endpoint rules
// of common/endpoint.h. Errors (kInvalidInput) for a malformed target or an
// unreadable TLS CA / certificate / key; an unreachable target is not an
// error: it is retried and counted. docs/flows.md has the details.
Result<std::unique_ptr<Exporter>> makeExporter(const std::string& target,
                                               const ExporterOptions& options);

// How the flow feed builds its exporters (makeExporter in the agent, a
// capturing fake in tests).
using ExporterFactory = std::function<Result<std::unique_ptr<Exporter>>(
    const std::string& target, const ExporterOptions& options)>;

}  // namespace bulkhead::flows
