// Where the denied-flow feed gets what touches the outside world: its NFLOG
// reader and its exporters. The agent uses the real ones (the defaults);
// unit tests pass a reader fed with netlink bytes and a capturing exporter,
// so the feed's logic runs without root.
#pragma once

#include "bulkhead/flows/exporter.h"
#include "bulkhead/flows/nflog.h"

namespace bulkhead::flows {

struct FeedSources {
  NflogOpener openNflog = NflogReader::open;
  ExporterFactory makeExporter = flows::makeExporter;
};

}  // namespace bulkhead::flows
