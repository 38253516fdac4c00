// makeExporter(): the flow target, parsed with the endpoint rules every
// flag shares (common/endpoint.h), picks the exporter. The exporters
// themselves: queued_exporter.cpp (queue, worker, counters),
// datagram_exporter.cpp (unix, udp, journald), stream_exporter.cpp (tcp,
// tls).
#include "bulkhead/flows/exporter.h"

#include <sys/un.h>

#include "queued_exporter.h"

namespace bulkhead::flows {

Result<std::unique_ptr<Exporter>> makeExporter(const std::string& target,
                                               const ExporterOptions& options) {
  auto parsed = common::parseEndpoint(target, kFlowTargetSchemes, "flow target");
  if (!parsed) return parsed.takeError();
  common::Endpoint t = std::move(parsed.value());
  switch (t.scheme) {
    case common::Scheme::kJournald:
      if (options.journaldSocket.empty() ||
          options.journaldSocket.size() >= sizeof(sockaddr_un{}.sun_path))
        return makeError(ErrorCode::kInvalidInput, "journald socket path is empty or too long");
      [[fallthrough]];
    case common::Scheme::kUnix:
    case common::Scheme::kUdp:
      return makeDatagramExporter(target, std::move(t), options);
    case common::Scheme::kTcp:
      return makeStreamExporter(target, std::move(t), options, nullptr);
    case common::Scheme::kTls: {
      auto ctx = makeTlsContext(options);
      if (!ctx) return ctx.takeError();
      return makeStreamExporter(target, std::move(t), options, std::move(ctx.value()));
    }
  }
  return makeError(ErrorCode::kInternal, "unreachable");
}

}  // namespace bulkhead::flows
