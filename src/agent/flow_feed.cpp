#include "bulkhead/agent/flow_feed.h"

#include <net/if.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>

#include <algorithm>
#include <cerrno>

#include "bulkhead/common/thread_name.h"

namespace bulkhead::agent {

namespace {

constexpr const char* kJournalSocket = "/run/systemd/journal/socket";

bool socketExists(const char* path) {
  struct stat st {};
  return ::stat(path, &st) == 0 && S_ISSOCK(st.st_mode);
}

flows::Format formatOf(const std::string& name) {
  if (name == "json") return flows::Format::kJson;
  if (name == "cef") return flows::Format::kCef;
  return flows::Format::kRfc5424;
}

void publishToWatchers(FlowHub& hub, const flows::FlowEvent& e) {
  if (!hub.watched()) return;
  v1::FlowEvent out;
  out.set_time(flows::rfc3339Micros(e.time));
  out.set_host(e.host);
  out.set_action(flows::flowActionName(e.action));
  out.set_app(e.app);
  out.set_workload(e.workload);
  out.set_src(e.src.toString());
  out.set_sport(e.sport);
  out.set_dst(e.dst.toString());
  out.set_dport(e.dport);
  out.set_proto(e.proto);
  out.set_reason(e.reason);
  out.set_count(e.count);
  for (const auto& [k, v] : e.fields)
    (*out.mutable_fields())[k] = v;
  hub.publish(out);
}

}  // namespace

void CounterSchedule::onEvents(common::SteadyClock::time_point now) {
  lastEvent_ = now;
  next_ = std::min(next_, now + kActiveInterval);
}

bool CounterSchedule::due(common::SteadyClock::time_point now) {
  if (now < next_) return false;
  // Within two intervals of the last event, the next sample is a second
  // away: the last of them falls at least a second after that event (one
  // interval would do; the second is a margin).
  const bool active = lastEvent_ && now - *lastEvent_ < 2 * kActiveInterval;
  next_ = now + (active ? kActiveInterval : kIdleInterval);
  return true;
}

void InterfaceDirectory::set(const std::string& iface, flows::Attribution who) {
  std::unique_lock lock(mu_);
  map_[iface] = std::move(who);
}

void InterfaceDirectory::erase(const std::string& iface) {
  std::unique_lock lock(mu_);
  map_.erase(iface);
}

void InterfaceDirectory::replaceAll(std::unordered_map<std::string, flows::Attribution> all) {
  std::unique_lock lock(mu_);
  map_.swap(all);
}

flows::Attribution InterfaceDirectory::find(const std::string& iface) const {
  std::shared_lock lock(mu_);
  auto it = map_.find(iface);
  return it == map_.end() ? flows::Attribution{} : it->second;
}

FlowFeed::FlowFeed(const AgentConfig& config, std::string host, FlowHub& hub,
                   const InterfaceDirectory& interfaces, nft::CounterReader& counters,
                   flows::FeedSources sources)
    : config_(config),
      host_(std::move(host)),
      sources_(std::move(sources)),
      hub_(hub),
      interfaces_(interfaces),
      attempts_(counters, config.table) {}

FlowFeed::~FlowFeed() {
  stop();
}

Status FlowFeed::start() {
  flows::NflogReader::Options nflog;
  nflog.group = config_.logGroup;
  auto reader = sources_.openNflog(nflog);
  if (!reader) return reader.takeError();
  reader_ = std::move(*reader);

  // Targets: every --syslog; without one, journald when it runs, else the
  // local syslog socket when there is one.
  std::vector<std::string> targets = config_.syslog;
  if (targets.empty()) {
    if (socketExists(kJournalSocket)) {
      targets.push_back("journald");
    } else if (socketExists("/dev/log")) {
      targets.push_back("unix:///dev/log");
    }
  }
  std::vector<std::unique_ptr<flows::Exporter>> exporters;
  flows::ExporterOptions options;
  options.format = formatOf(config_.flowFormat);
  options.formatOptions.procId = int(getpid());
  options.tlsCa = config_.syslogTlsCa;
  options.tlsCert = config_.syslogTlsCert;
  options.tlsKey = config_.syslogTlsKey;
  for (const auto& t : targets) {
    auto e = sources_.makeExporter(t, options);
    if (!e) return e.takeError();
    exporters.push_back(std::move(*e));
  }
  if (exporters.empty())
    spdlog::warn(
        "no syslog target (no --syslog, no journald, no /dev/log): denied flows are "
        "counted and streamed to watchers only");
  flows::PipelineOptions popts;
  popts.host = host_;
  popts.workloadRate = config_.flowWorkloadRate;
  popts.workloadBurst = 2.0 * config_.flowWorkloadRate;
  if (config_.scanDetection) {
    ScanOptions scan;
    scan.hosts = config_.scanHosts;
    scan.ports = config_.scanPorts;
    scan.window = std::chrono::seconds(config_.scanWindowSeconds);
    scans_.emplace(scan);
    popts.observe = [this](const flows::FlowEvent& e, bool repeat) { observe(e, repeat); };
  }
  pipeline_ = std::make_unique<flows::Pipeline>(
      popts, [this](uint32_t ifindex) { return resolve(ifindex); },
      [this](const flows::FlowEvent& e) { publishToWatchers(hub_, e); }, std::move(exporters));
  nextSummary_ = flows::WallClock::now() + std::chrono::seconds(config_.flowSummarySeconds);
  thread_ = std::thread([this] {
    common::nameThisThread("bh-flows");
    run();
  });
  return {};
}

void FlowFeed::publish(const flows::FlowEvent& e) {
  publishToWatchers(hub_, e);
  if (!pipeline_) return;
  for (auto& x : pipeline_->exporters())
    x->offer(e);
}

void FlowFeed::observe(const flows::FlowEvent& e, bool repeat) {
  auto found = scans_->observe(e, repeat);
  if (!found) return;
  const flows::FlowEvent anomaly = anomalyEvent(*found, scans_->options());
  spdlog::warn("workload {} (app {}): {} ({} distinct in {} s)", found->workload, found->app,
               anomaly.reason, found->distinct, scans_->options().window.count());
  publish(anomaly);
  if (onScan_) onScan_(*found);
}

void FlowFeed::stop() {
  stop_ = true;
  if (thread_.joinable()) thread_.join();
  if (pipeline_)
    for (auto& e : pipeline_->exporters())
      e->flush(500);
}

flows::Attribution FlowFeed::resolve(uint32_t ifindex) {
  if (ifindex == 0) return {};
  constexpr auto kIfnameTtl = std::chrono::seconds(2);
  const auto now = common::SteadyClock::now();
  auto it = ifnames_.find(ifindex);
  if (it == ifnames_.end() || now - it->second.fetched > kIfnameTtl) {
    char name[IF_NAMESIZE] = {};
    if (!if_indextoname(ifindex, name)) name[0] = '\0';
    if (ifnames_.size() > 65536) ifnames_.clear();  // bounded under churn
    it = ifnames_.insert_or_assign(ifindex, CachedName{name, now}).first;
  }
  if (it->second.name.empty()) return {};
  return interfaces_.find(it->second.name);
}

void FlowFeed::sampleCounters() {
  const Status st = attempts_.sample();
  if (st) return;
  // Still interrupted by commits after a few dumps (a burst of changes):
  // the next sample catches up, as the counters only grow.
  if (st.error().sysErrno == EINTR) {
    spdlog::warn("reading the counters of table inet {}: {}; next second", config_.table,
                 st.error().describe());
  } else {
    spdlog::error("reading the counters of table inet {}: {}", config_.table,
                  st.error().describe());
  }
}

v1::FlowCounters FlowFeed::counters() const {
  v1::FlowCounters out;
  if (!pipeline_) return out;
  const auto a = pipeline_->accounting(attempts_.total());
  out.set_seen(a.seen);
  out.set_exported(a.exported);
  out.set_suppressed(a.suppressed);
  for (const auto& [cause, n] : a.suppressedByCause)
    (*out.mutable_suppressed_by_cause())[cause] = n;
  return out;
}

void FlowFeed::maybeSummarize(flows::WallClock::time_point now) {
  if (now < nextSummary_) return;
  nextSummary_ = now + std::chrono::seconds(config_.flowSummarySeconds);
  const auto c = counters();
  if (c.suppressed() <= lastSummarized_) return;
  const uint64_t fresh = c.suppressed() - lastSummarized_;
  lastSummarized_ = c.suppressed();
  std::string why;
  for (const auto& [cause, n] : c.suppressed_by_cause())
    if (n) why += (why.empty() ? "" : ",") + cause + "=" + std::to_string(n);
  flows::FlowEvent e;
  e.time = now;
  e.host = host_;
  e.action = flows::FlowAction::kSummary;
  e.reason = "suppressed " + why;
  e.count = fresh;
  e.proto = "-";
  spdlog::warn("denied-flow feed: {} attempts not delivered in the last period ({})", fresh, why);
  for (auto& x : pipeline_->exporters())
    x->offer(e);
}

void FlowFeed::run() {
  CounterSchedule counters(common::SteadyClock::now());
  auto nextTick = flows::WallClock::now();
  while (!stop_) {
    auto packets = reader_->read(50);
    const auto now = flows::WallClock::now();
    const auto steadyNow = common::SteadyClock::now();
    if (packets) {
      for (const auto& p : *packets)
        pipeline_->onPacket(p, now);
      if (!packets->empty()) counters.onEvents(steadyNow);
    } else {
      spdlog::error("reading NFLOG group {}: {}", config_.logGroup, packets.error().describe());
      counters.onEvents(steadyNow);  // maybe events lost: count as if some came
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    if (now >= nextTick) {
      // Closing fold windows walks every open one: a few times a second is
      // plenty (windows are a second long), not after every read.
      nextTick = now + std::chrono::milliseconds(20);
      pipeline_->tick(now);
    }
    if (counters.due(steadyNow)) sampleCounters();
    maybeSummarize(now);
  }
}

}  // namespace bulkhead::agent
