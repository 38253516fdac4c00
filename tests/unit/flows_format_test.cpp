// Formats of the denied-flow feed (docs/flows.md): the exact RFC 5424 line of the
// documented example, JSON and CEF shapes, and each format's escaping.
#include "bulkhead/flows/format.h"

#include <gtest/gtest.h>

#include <cctype>
#include <map>

namespace bulkhead::flows {
namespace {

WallClock::time_point specTime() {
  // 2026-11-25T13:06:40.343246Z
  return WallClock::time_point(std::chrono::seconds(1795612000)) +
         std::chrono::microseconds(343246);
}

FlowEvent specEvent() {
  FlowEvent e;
  e.time = specTime();
  e.host = "hv01";
  e.action = FlowAction::kDeny;
  e.app = "billing";
  e.workload = "billing-7f9c";
  e.src = *policy::IpAddr::parse("192.0.2.10");
  e.dst = *policy::IpAddr::parse("198.51.100.10");
  e.sport = 43910;
  e.dport = 22;
  e.proto = "tcp";
  e.reason = "default";
  e.count = 1;
  return e;
}

FormatOptions specOptions() {
  FormatOptions o;
  o.procId = 4711;
  return o;
}

TEST(FlowsFormat, Rfc3339Micros) {
  EXPECT_EQ(rfc3339Micros(specTime()), "2026-11-25T13:06:40.343246Z");
  EXPECT_EQ(rfc3339Micros(WallClock::time_point{}), "1970-01-01T00:00:00.000000Z");
  EXPECT_EQ(rfc3339Micros(WallClock::time_point(std::chrono::microseconds(-1))),
            "1969-12-31T23:59:59.999999Z");
}

TEST(FlowsFormat, Rfc5424SpecExampleExactly) {
  EXPECT_EQ(formatRfc5424(specEvent(), specOptions()),
            "<132>1 2026-11-25T13:06:40.343246Z hv01 bulkhead-agent 4711 DENY [flow@32473 "
            "action=\"deny\" app=\"billing\" workload=\"billing-7f9c\" src=\"192.0.2.10\" "
            "sport=\"43910\" dst=\"198.51.100.10\" dport=\"22\" proto=\"tcp\" "
            "reason=\"default\" count=\"1\"] billing-7f9c -> 198.51.100.10:22/tcp denied");
  EXPECT_EQ(formatEvent(specEvent(), Format::kRfc5424, specOptions()),
            formatRfc5424(specEvent(), specOptions()));
}

TEST(FlowsFormat, Rfc5424ActionsPriMsgIdVerb) {
  struct Case {
    FlowAction action;
    const char* pri;
    const char* msgid;
    const char* verb;
  };
  for (const Case& c : {Case{FlowAction::kDeny, "<132>", " DENY [", " denied"},
                        Case{FlowAction::kAudit, "<133>", " AUDIT [", " audited"},
                        Case{FlowAction::kSpoof, "<132>", " SPOOF [", " spoofed"},
                        Case{FlowAction::kQuarantine, "<132>", " QUARANTINE [", " quarantined"},
                        Case{FlowAction::kLog, "<133>", " LOG [", " logged"},
                        Case{FlowAction::kUnregistered, "<132>", " UNREGISTERED [",
                             " dropped (unregistered interface)"},
                        Case{FlowAction::kAnomaly, "<132>", " ANOMALY [", " flagged as a scan"},
                        Case{FlowAction::kSummary, "<133>", " SUMMARY [", " summary"}}) {
    FlowEvent e = specEvent();
    e.action = c.action;
    const std::string line = formatRfc5424(e, specOptions());
    EXPECT_EQ(line.substr(0, 5), c.pri) << line;
    EXPECT_NE(line.find(c.msgid), std::string::npos) << line;
    EXPECT_EQ(line.substr(line.size() - std::string(c.verb).size()), c.verb) << line;
  }
  FormatOptions o = specOptions();
  o.facility = 4;  // auth: 4*8+4
  EXPECT_EQ(formatRfc5424(specEvent(), o).substr(0, 5), "<36>1");
}

TEST(FlowsFormat, Rfc5424Ipv6AndPortless) {
  FlowEvent e = specEvent();
  e.src = *policy::IpAddr::parse("2001:db8::10");
  e.dst = *policy::IpAddr::parse("2001:db8::1");
  e.dport = 443;
  std::string line = formatRfc5424(e, specOptions());
  EXPECT_NE(line.find("dst=\"2001:db8::1\""), std::string::npos);
  EXPECT_NE(line.find("] billing-7f9c -> [2001:db8::1]:443/tcp denied"), std::string::npos) << line;

  e = specEvent();
  e.sport = e.dport = 0;
  e.proto = "icmp";
  line = formatRfc5424(e, specOptions());
  EXPECT_NE(line.find("] billing-7f9c -> 198.51.100.10/icmp denied"), std::string::npos) << line;
  EXPECT_NE(line.find("sport=\"0\" dst=\"198.51.100.10\" dport=\"0\""), std::string::npos);
}

TEST(FlowsFormat, Rfc5424NilValuesAndHeaderSanitizing) {
  FlowEvent e = specEvent();
  e.host = "";
  e.workload = "";
  e.app = "";
  e.reason = "";
  e.action = FlowAction::kSpoof;
  FormatOptions o = specOptions();
  o.appName = "";
  std::string line = formatRfc5424(e, o);
  EXPECT_EQ(line.substr(0, 46), "<132>1 2026-11-25T13:06:40.343246Z - - 4711 SP");
  EXPECT_NE(line.find("app=\"\" workload=\"\""), std::string::npos);
  EXPECT_NE(line.find("reason=\"\""), std::string::npos);
  EXPECT_NE(line.find("] - -> 198.51.100.10:22/tcp spoofed"), std::string::npos) << line;

  e = specEvent();
  e.host = "hv 01\xc3\xa9" + std::string(300, 'h');
  o.appName = "my app" + std::string(60, 'a');
  line = formatRfc5424(e, o);
  const std::string host = line.substr(35, line.find(' ', 35) - 35);
  EXPECT_EQ(host.size(), 255u);
  EXPECT_EQ(host.substr(0, 8), "hv_01__h");
  const size_t appStart = 35 + host.size() + 1;
  const std::string app = line.substr(appStart, line.find(' ', appStart) - appStart);
  EXPECT_EQ(app.size(), 48u);
  EXPECT_EQ(app.substr(0, 7), "my_appa");
  for (char c : line.substr(0, line.find('[')))
    EXPECT_TRUE(c == ' ' || (c >= 33 && c <= 126));
}

TEST(FlowsFormat, SdValueEscaping) {
  EXPECT_EQ(escapeSdValue(R"(a"b\c]d)"), R"(a\"b\\c\]d)");
  EXPECT_EQ(escapeSdValue("line1\nline2\t"), "line1#012line2#011");
  EXPECT_EQ(escapeSdValue("caf\xc3\xa9 [x]"), "caf\xc3\xa9 [x\\]");
  FlowEvent e = specEvent();
  e.reason = R"(globalpolicy/no "ssh"]\x/0)";
  e.workload = "evil\nDENY";
  const std::string line = formatRfc5424(e, specOptions());
  EXPECT_NE(line.find(R"(reason="globalpolicy/no \"ssh\"\]\\x/0")"), std::string::npos) << line;
  EXPECT_EQ(line.find('\n'), std::string::npos);
  EXPECT_NE(line.find("] evil#012DENY -> "), std::string::npos) << line;
}

TEST(FlowsFormat, JsonExact) {
  EXPECT_EQ(formatJson(specEvent()),
            R"({"time":"2026-11-25T13:06:40.343246Z","host":"hv01","action":"deny",)"
            R"("app":"billing","workload":"billing-7f9c","src":"192.0.2.10","sport":43910,)"
            R"("dst":"198.51.100.10","dport":22,"proto":"tcp","reason":"default","count":1})");
}

// A minimal JSON checker for one flat object of strings and integers: returns
// the decoded members, or nothing when the text is not valid JSON of that shape.
std::optional<std::map<std::string, std::string>> parseFlatJson(const std::string& s) {
  size_t i = 0;
  std::map<std::string, std::string> out;
  const auto parseString = [&](std::string& v) -> bool {
    if (i >= s.size() || s[i] != '"') return false;
    ++i;
    while (i < s.size() && s[i] != '"') {
      const unsigned char c = static_cast<unsigned char>(s[i]);
      if (c < 0x20) return false;
      if (c != '\\') {
        v.push_back(static_cast<char>(c));
        ++i;
        continue;
      }
      if (++i >= s.size()) return false;
      switch (s[i]) {
        case '"':
          v += '"';
          break;
        case '\\':
          v += '\\';
          break;
        case '/':
          v += '/';
          break;
        case 'b':
          v += '\b';
          break;
        case 'f':
          v += '\f';
          break;
        case 'n':
          v += '\n';
          break;
        case 'r':
          v += '\r';
          break;
        case 't':
          v += '\t';
          break;
        case 'u': {
          if (i + 4 >= s.size()) return false;
          const unsigned cp = std::stoul(s.substr(i + 1, 4), nullptr, 16);
          if (cp < 0x80) {
            v.push_back(static_cast<char>(cp));
          } else if (cp < 0x800) {
            v.push_back(static_cast<char>(0xc0 | (cp >> 6)));
            v.push_back(static_cast<char>(0x80 | (cp & 0x3f)));
          } else {
            v.push_back(static_cast<char>(0xe0 | (cp >> 12)));
            v.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3f)));
            v.push_back(static_cast<char>(0x80 | (cp & 0x3f)));
          }
          i += 4;
          break;
        }
        default:
          return false;
      }
      ++i;
    }
    if (i >= s.size()) return false;
    ++i;
    return true;
  };
  if (s.empty() || s[i++] != '{') return std::nullopt;
  for (;;) {
    std::string key, value;
    if (!parseString(key) || i >= s.size() || s[i++] != ':') return std::nullopt;
    if (i < s.size() && s[i] == '"') {
      if (!parseString(value)) return std::nullopt;
    } else {
      while (i < s.size() && std::isdigit(static_cast<unsigned char>(s[i])))
        value += s[i++];
      if (value.empty()) return std::nullopt;
      value = "#" + value;  // marks a number
    }
    out[key] = value;
    if (i >= s.size()) return std::nullopt;
    if (s[i] == ',') {
      ++i;
      continue;
    }
    if (s[i] == '}' && i + 1 == s.size()) return out;
    return std::nullopt;
  }
}

TEST(FlowsFormat, JsonEscapingRoundTrips) {
  FlowEvent e = specEvent();
  e.workload = "we\"ird\\name\n\t\x01\x1f";
  e.app = "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x94\xa5";  // é € 🔥
  e.reason = "bad\xff utf8";
  e.count = 18446744073709551615ull;
  const std::string json = formatJson(e);
  EXPECT_EQ(json.find('\n'), std::string::npos);
  EXPECT_NE(json.find(R"("workload":"we\"ird\\name\n\t\u0001\u001f")"), std::string::npos) << json;
  auto parsed = parseFlatJson(json);
  ASSERT_TRUE(parsed) << json;
  EXPECT_EQ((*parsed)["workload"], e.workload);
  EXPECT_EQ((*parsed)["app"], e.app);
  EXPECT_EQ((*parsed)["reason"], "bad\xef\xbf\xbd utf8");  // U+FFFD
  EXPECT_EQ((*parsed)["count"], "#18446744073709551615");
  EXPECT_EQ((*parsed)["sport"], "#43910");
  EXPECT_EQ((*parsed)["dport"], "#22");
  EXPECT_EQ(parsed->size(), 12u);
  EXPECT_EQ(escapeJson("\x7f"), "\\u007f");
}

TEST(FlowsFormat, CefExact) {
  EXPECT_EQ(formatCef(specEvent(), specOptions()),
            "CEF:0|bulkhead|bulkhead-agent|0.1|flow-deny|Flow denied|5|src=192.0.2.10 spt=43910 "
            "dst=198.51.100.10 dpt=22 proto=tcp act=deny cnt=1 cs1Label=app cs1=billing "
            "cs2Label=workload cs2=billing-7f9c cs3Label=reason cs3=default "
            "rt=1795612000343 dvchost=hv01");
}

TEST(FlowsFormat, CefEscaping) {
  EXPECT_EQ(escapeCefHeader(R"(a|b\c=d)"), R"(a\|b\\c=d)");
  EXPECT_EQ(escapeCefHeader("a\nb"), "a b");
  EXPECT_EQ(escapeCefExtension("a=b\\c|d\ne\rf"), R"(a\=b\\c|d\ne\rf)");
  FlowEvent e = specEvent();
  e.reason = "globalpolicy/a=b/0";
  e.workload = "w|x\\y\nz";
  FormatOptions o = specOptions();
  o.appName = "bulk|head\\";
  const std::string cef = formatCef(e, o);
  EXPECT_NE(cef.find("|bulk\\|head\\\\|0.1|flow-deny|"), std::string::npos) << cef;
  EXPECT_NE(cef.find(R"(cs3=globalpolicy/a\=b/0 )"), std::string::npos) << cef;
  EXPECT_NE(cef.find(R"(cs2=w|x\\y\nz )"), std::string::npos) << cef;
  EXPECT_NE(cef.find(R"(act=deny )"), std::string::npos) << cef;
  EXPECT_EQ(cef.find('\n'), std::string::npos);
  FlowEvent u = specEvent();
  u.app = "caf\xc3\xa9";
  EXPECT_NE(formatCef(u).find("cs1=caf\xc3\xa9 "), std::string::npos);
}

TEST(FlowsFormat, OctetFrame) {
  EXPECT_EQ(octetFrame(""), "0 ");
  EXPECT_EQ(octetFrame("abc"), "3 abc");
  const std::string line = formatRfc5424(specEvent(), specOptions());
  EXPECT_EQ(octetFrame(line), std::to_string(line.size()) + " " + line);
  EXPECT_EQ(octetFrame("caf\xc3\xa9"), "5 caf\xc3\xa9");  // octets, not characters
}

TEST(FlowsFormat, FlowMessageAndSeverity) {
  EXPECT_EQ(flowMessage(specEvent()), "billing-7f9c -> 198.51.100.10:22/tcp denied");
  EXPECT_EQ(syslogSeverity(FlowAction::kDeny), 4);
  EXPECT_EQ(syslogSeverity(FlowAction::kQuarantine), 4);
  EXPECT_EQ(syslogSeverity(FlowAction::kAudit), 5);
  EXPECT_EQ(syslogSeverity(FlowAction::kLog), 5);
  EXPECT_EQ(syslogSeverity(FlowAction::kSummary), 5);
}

TEST(FlowsFormat, ActionNamesRoundTrip) {
  for (const FlowAction a :
       {FlowAction::kDeny, FlowAction::kAudit, FlowAction::kSpoof, FlowAction::kQuarantine,
        FlowAction::kUnregistered, FlowAction::kLog, FlowAction::kAnomaly, FlowAction::kSummary})
    EXPECT_EQ(parseFlowAction(flowActionName(a)), a);
  EXPECT_FALSE(parseFlowAction("Deny"));
  EXPECT_FALSE(parseFlowAction(""));
  // Only the kernel's actions come from a log prefix.
  EXPECT_FALSE(parsePrefix("bh:anomaly"));
  EXPECT_FALSE(parsePrefix("bh:summary:x"));
  EXPECT_EQ(parsePrefix("bh:log:globalpolicy/a/0")->action, FlowAction::kLog);
}

}  // namespace
}  // namespace bulkhead::flows
