#include "support/apply.h"

#include <stdexcept>

#include "bulkhead/nft/mnl_kernel.h"
#include "bulkhead/nft/writer.h"
#include "bulkhead/policy/loader.h"

namespace bulkhead::testing {

compiler::Ruleset compileYaml(const std::string& yaml, const compiler::CompileOptions& options) {
  auto loaded = policy::loadText(yaml, "test.yaml");
  if (!loaded.ok()) {
    std::string all;
    for (const auto& e : loaded.errors)
      all += e.toString() + "\n";
    throw std::runtime_error("test policy is invalid:\n" + all);
  }
  auto rs = compiler::compile(loaded.bundle, {}, options);
  if (!rs) throw std::runtime_error("compile: " + rs.error().describe());
  return std::move(*rs);
}

Status KernelApplier::apply(const compiler::Ruleset& next) {
  Status result;
  ns_.run([&] {
    auto kernel = nft::MnlKernel::open();
    if (!kernel) {
      result = kernel.takeError();
      return;
    }
    nft::Writer writer(**kernel);
    result = writer.sync(applied_ ? &*applied_ : nullptr, next);
  });
  if (result) applied_ = next;
  return result;
}

Status KernelApplier::replace(const compiler::Ruleset& next) {
  Status result;
  ns_.run([&] {
    auto kernel = nft::MnlKernel::open();
    if (!kernel) {
      result = kernel.takeError();
      return;
    }
    result = nft::Writer(**kernel).replace(next);
  });
  if (result) applied_ = next;
  return result;
}

}  // namespace bulkhead::testing
