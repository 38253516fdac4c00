// Span filtering: which apps' workloads a host's apps can select.
#include <gtest/gtest.h>

#include "bulkhead/controller/span.h"
#include "bulkhead/policy/loader.h"

namespace bulkhead::controller {
namespace {

constexpr const char* kBundle = R"(apiVersion: bulkhead/v1
kind: App
metadata: {name: frontend, labels: {tier: web}}
spec:
  egress:
    - to: [payments-api, billing]
---
apiVersion: bulkhead/v1
kind: App
metadata: {name: payments, labels: {tier: api, env: prod}}
spec: {}
---
apiVersion: bulkhead/v1
kind: App
metadata: {name: billing}
spec: {}
---
apiVersion: bulkhead/v1
kind: App
metadata: {name: reports, labels: {tier: batch}}
spec:
  egress:
    - to: [ledger-db]
---
apiVersion: bulkhead/v1
kind: Service
metadata: {name: payments-api}
spec:
  appSelector: {app: payments}
  ports: [tcp/8443]
---
apiVersion: bulkhead/v1
kind: Service
metadata: {name: ledger-db}
spec:
  endpoints:
    - cidrs: [198.51.100.10/32]
---
apiVersion: bulkhead/v1
kind: Service
metadata: {name: prod-apis, labels: {zone: core}}
spec:
  appSelector: {env: prod}
---
apiVersion: bulkhead/v1
kind: GlobalPolicy
metadata: {name: baseline}
spec:
  rules:
    - action: deny
      from: {tier: batch}
      toSelector: {env: staging}
    - action: deny
      from: {app: cron}
      toSelector: {zone: core}
)";

SpanIndex index() {
  auto loaded = policy::loadText(kBundle, "fleet.yaml");
  EXPECT_TRUE(loaded.ok()) << (loaded.errors.empty() ? "" : loaded.errors[0].toString());
  return SpanIndex(loaded.bundle);
}

TEST(ControllerSpan, AppSelectorServiceAndAppNameAreSelected) {
  const auto span = index();
  const auto interest = span.interestOf({"frontend"});
  EXPECT_TRUE(span.wants(interest, "payments"));  // appSelector {app: payments}
  EXPECT_TRUE(span.wants(interest, "billing"));   // `to: billing` names the App
  EXPECT_FALSE(span.wants(interest, "reports"));
  EXPECT_FALSE(span.wants(interest, "frontend"));
  // An app without a document: only its implicit label counts.
  EXPECT_FALSE(span.wants(interest, "unknown-app"));
}

TEST(ControllerSpan, HostWhoseAppsSelectNothingWantsNothing) {
  const auto span = index();
  // reports egresses to a CIDR service only.
  const auto interest = span.interestOf({"reports", "payments", "billing"});
  for (const char* app : {"frontend", "payments", "billing", "reports", "other"})
    EXPECT_FALSE(span.wants(interest, app)) << app;
  EXPECT_TRUE(span.interestOf({}).selectors.empty());
}

TEST(ControllerSpan, GlobalPolicyToSelectorCountsForTheAppsItAppliesTo) {
  const auto span = index();
  // reports is tier: batch: the first rule applies; a staging app is selected.
  const auto loadedStaging = policy::loadText(std::string(kBundle) + R"(---
apiVersion: bulkhead/v1
kind: App
metadata: {name: canary, labels: {env: staging}}
spec: {}
)",
                                              "fleet.yaml");
  ASSERT_TRUE(loadedStaging.ok());
  const SpanIndex withCanary(loadedStaging.bundle);
  EXPECT_TRUE(withCanary.wants(withCanary.interestOf({"reports"}), "canary"));
  EXPECT_FALSE(withCanary.wants(withCanary.interestOf({"frontend"}), "canary"));
  // Through a service the toSelector matches (zone: core -> appSelector
  // env: prod), for an app without a document (cron: implicit labels).
  EXPECT_TRUE(span.wants(span.interestOf({"cron"}), "payments"));
  EXPECT_FALSE(span.wants(span.interestOf({"cron"}), "billing"));
}

TEST(ControllerSpan, EmptySelectorSelectsEveryApp) {
  auto loaded = policy::loadText(R"(apiVersion: bulkhead/v1
kind: GlobalPolicy
metadata: {name: audit-all}
spec:
  rules:
    - action: log
      from: {app: probe}
      toSelector: {}
)",
                                 "g.yaml");
  ASSERT_TRUE(loaded.ok()) << loaded.errors[0].toString();
  const SpanIndex span(loaded.bundle);
  EXPECT_TRUE(span.wants(span.interestOf({"probe"}), "anything"));
  EXPECT_FALSE(span.wants(span.interestOf({"web"}), "anything"));
}

}  // namespace
}  // namespace bulkhead::controller
