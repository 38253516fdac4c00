// bulkhead-cni: the chained CNI plugin (docs/hooks.md). Wiring only.
#include <unistd.h>

#include <iostream>
#include <string>

#include "bulkhead/hooks/cni.h"

int main() {
  std::ios::sync_with_stdio(false);
  const auto env = bulkhead::hooks::CniEnv::fromProcess();
  std::string config;
  if (env.command != "VERSION" || !isatty(0)) config = bulkhead::hooks::readBounded(std::cin);
  const auto outcome = bulkhead::hooks::runCni(env, config, bulkhead::hooks::grpcConnector());
  std::cout << outcome.out << std::flush;
  std::cerr << outcome.err << std::flush;
  return outcome.exitCode;
}
