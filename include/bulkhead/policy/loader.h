// YAML loading (docs/policy.md) and validation of a bundle. Both report every error,
// each as "file:line:column: message"; a bundle with any error is rejected
// whole by the callers.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "bulkhead/policy/model.h"

namespace bulkhead::policy {

struct LoadResult {
  Bundle bundle;
  std::vector<Diagnostic> errors;
  std::vector<Diagnostic> warnings;  // e.g. a Workload whose App has no document

  bool ok() const { return errors.empty(); }
};

// Parses one file's text (multi-document YAML) into `into`, appending errors.
// Does not run the cross-document checks of validateBundle().
void parseText(std::string_view text, const std::string& fileName, Bundle& into,
               std::vector<Diagnostic>& errors);

// One policy file as read from disk or received in a push.
struct SourceFile {
  std::string name;
  std::string content;
};

// The files of `paths`: files as given, directories recursively (*.yaml /
// *.yml, sorted by path), within the size limits. Errors name the path.
std::vector<SourceFile> readSourceFiles(const std::vector<std::string>& paths,
                                        std::vector<Diagnostic>& errors);

// In-memory files parsed then validated as one bundle: what the agent does
// with a push, so its errors are the ones `bulkhead validate` prints.
LoadResult loadFiles(const std::vector<SourceFile>& files);

// readSourceFiles + loadFiles.
LoadResult loadPaths(const std::vector<std::string>& paths);

// One text, parsed then validated as one bundle.
LoadResult loadText(std::string_view text, const std::string& fileName);

// Cross-document checks of a bundle however it was built (YAML or API):
// names, limits, duplicate names, dangling references, interfaces or
// addresses claimed by two workloads.
void validateBundle(const Bundle& bundle, std::vector<Diagnostic>& errors,
                    std::vector<Diagnostic>& warnings);

// The checks of one workload on its own (name, interfaces, addresses, limits),
// used for bundle documents and API registrations alike.
void validateWorkload(const Workload& workload, std::vector<Diagnostic>& errors);
// The same for another host's workload, which has no interfaces here (and
// must list none).
void validateRemoteWorkload(const Workload& workload, std::vector<Diagnostic>& errors);
// Either check's errors as one message, "a; b" ("" when the workload is
// valid): what an API caller or a delta is refused with.
std::string workloadErrors(const Workload& workload, bool remote);

// True for a valid object name: a DNS label, [a-z0-9]([-a-z0-9]*[a-z0-9])?, at
// most limits::kMaxNameLength characters. Names become nftables identifiers.
bool isValidName(std::string_view name);

// True for a valid workload name: a name as above, or two parts joined by one
// '/' as orchestrators name workloads ("<namespace>/<pod>", "<container
// id>/<ifname>"), each part of [a-z0-9] and "-._", starting and ending with a
// letter or digit; at most limits::kMaxWorkloadNameLength. Workload names
// never become nftables identifiers; they appear in logs and flow events.
bool isValidWorkloadName(std::string_view name);

// True for a valid interface name: 1-15 of [A-Za-z0-9_.@:-], not "." or "..".
bool isValidInterfaceName(std::string_view name);

}  // namespace bulkhead::policy
