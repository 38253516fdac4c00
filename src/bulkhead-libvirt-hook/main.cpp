// bulkhead-libvirt-hook: libvirt's qemu hook (docs/hooks.md). Wiring only.
#include <unistd.h>
#include <cstdlib>

#include <iostream>
#include <string>
#include <vector>

#include "bulkhead/hooks/libvirt.h"

int main(int argc, char** argv) {
  std::ios::sync_with_stdio(false);
  const std::vector<std::string> args(argv + 1, argv + argc);
  // libvirt always writes the domain XML; read it all so it never blocks.
  std::string xml;
  if (!isatty(0)) xml = bulkhead::hooks::readBounded(std::cin);
  const char* agent = std::getenv("BULKHEAD_AGENT");
  const auto outcome =
      bulkhead::hooks::runLibvirtHook(args, xml, agent ? agent : "", bulkhead::hooks::kHookConfig,
                                      bulkhead::hooks::grpcConnector());
  std::cerr << outcome.err << std::flush;
  return outcome.exitCode;
}
