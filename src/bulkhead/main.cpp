#include <iostream>
#include <string>
#include <vector>

#include "bulkhead/cli/commands.h"

int main(int argc, char** argv) {
  std::vector<std::string> args(argv + 1, argv + argc);
  return bulkhead::cli::run(args, std::cout, std::cerr);
}
