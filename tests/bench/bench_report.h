// Machine-readable figures for every benchmark. With `--json=FILE` a bench
// writes, next to its printed report, one JSON document:
//
//   {"bench": "bench_apply", "date": "2026-11-28T12:00:00Z",
//    "machine": "kernel 6.18.44, nftables v1.0.6 (...), 2 CPUs",
//    "args": ["--runs=5"], "figures": [{"name": "full apply", "config":
//    "bulkhead", "size": 10000, "value": 0.906, "unit": "s"}, ...],
//    "goals": [{"name": "...", "status": "PASS", "value": 0.47,
//    "goal": 0.6, "text": "full apply: ours/nft = 0.47 (goal <= 0.6)"}]}
//
// `name` says what was measured, `config` which side (bulkhead, nft,
// iptables-restore, ulogd2...), `size` the scale it was measured at
// (workloads, events; 0 when none applies). tests/bench/run-all.sh merges the
// documents into docs/benchmarks/results.json and plots them.
//
// Each bench calls report().init() first (it takes `--json=FILE` out of argv
// before the bench parses its own flags), adds figures where it prints them,
// and report().write() once at the end: a run that fails writes nothing.
#pragma once

#include <cmath>
#include <cstdio>
#include <ctime>
#include <fstream>
#include <string>
#include <vector>

#include "bench_util.h"

namespace bulkhead::bench {

class Report {
 public:
  void init(const char* bench, int& argc, char** argv) {
    bench_ = bench;
    int out = 1;
    for (int i = 1; i < argc; ++i) {
      const std::string a = argv[i];
      if (a.rfind("--json=", 0) == 0) {
        path_ = a.substr(7);
        if (path_.empty()) throw Failure("--json=FILE: empty file name");
        continue;
      }
      args_.push_back(a);
      argv[out++] = argv[i];
    }
    argc = out;
    argv[argc] = nullptr;
  }

  void figure(const std::string& name, const std::string& config, double size, double value,
              const std::string& unit) {
    figures_.push_back("{\"name\": " + quote(name) + ", \"config\": " + quote(config) +
                       ", \"size\": " + number(size) + ", \"value\": " + number(value) +
                       ", \"unit\": " + quote(unit) + "}");
  }

  // A goal line as printed (PASS/MISS/info), with the figure it judged and
  // the bound it was judged against.
  void goal(const std::string& name, bool pass, double value, double bound,
            const std::string& text) {
    goals_.push_back("{\"name\": " + quote(name) + ", \"status\": " +
                     quote(pass ? "PASS" : "MISS") + ", \"value\": " + number(value) +
                     ", \"goal\": " + number(bound) + ", \"text\": " + quote(text) + "}");
  }

  // Writes the document when `--json=FILE` was given; a file that cannot be
  // written is a Failure (run-all.sh must not plot a stale one).
  void write() const {
    if (path_.empty()) return;
    char date[32];
    const std::time_t now = std::time(nullptr);
    std::strftime(date, sizeof date, "%Y-%m-%dT%H:%M:%SZ", std::gmtime(&now));
    std::string doc = "{\"bench\": " + quote(bench_) + ", \"date\": " + quote(date) +
                      ", \"machine\": " + quote(machineLine()) + ", \"args\": [";
    for (size_t i = 0; i < args_.size(); ++i)
      doc += (i ? ", " : "") + quote(args_[i]);
    doc += "],\n \"figures\": [" + join(figures_) + "],\n \"goals\": [" + join(goals_) + "]}\n";
    std::ofstream f(path_, std::ios::trunc);
    f << doc;
    if (!f.flush()) throw Failure("cannot write " + path_);
  }

  static std::string quote(const std::string& s) {
    std::string out = "\"";
    for (const unsigned char c : s) {
      if (c == '"' || c == '\\') {
        out += '\\';
        out += char(c);
      } else if (c < 0x20) {
        char buf[8];
        std::snprintf(buf, sizeof buf, "\\u%04x", c);
        out += buf;
      } else {
        out += char(c);
      }
    }
    return out + "\"";
  }

 private:
  // JSON has no NaN or infinity: a figure that could not be measured is null.
  static std::string number(double v) {
    if (!std::isfinite(v)) return "null";
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.6g", v);
    return buf;
  }

  static std::string join(const std::vector<std::string>& items) {
    std::string out;
    for (size_t i = 0; i < items.size(); ++i)
      out += (i ? ",\n  " : "\n  ") + items[i];
    return out;
  }

  std::string bench_, path_;
  std::vector<std::string> args_;
  std::vector<std::string> figures_, goals_;
};

inline Report& report() {
  static Report r;
  return r;
}

}  // namespace bulkhead::bench
