// Throwaway X.509 material for the TLS tests, made with the openssl command
// line: a CA, and keys with certificates it signs (or that nobody signs).
// Every certificate is an EC P-256 key, valid for one day.
#pragma once

#include <filesystem>
#include <string>

#include "support/netns.h"

namespace bulkhead::testing {

// DIR/ca.key and DIR/ca.crt: a new self-signed CA (CN bulkhead-test-ca).
CmdResult makeTestCa(const std::filesystem::path& dir);

// DIR/NAME.key and DIR/NAME.crt for `subject` ("/CN=..."), signed by
// DIR/ca.crt, with the x509v3 extension lines `ext` separated by "\n", e.g.
// "subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth".
CmdResult makeSignedCert(const std::filesystem::path& dir, const std::string& name,
                         const std::string& subject, const std::string& ext);

// DIR/NAME.key and DIR/NAME.crt, self-signed: a certificate no test CA
// vouches for.
CmdResult makeSelfSignedCert(const std::filesystem::path& dir, const std::string& name,
                             const std::string& subject);

}  // namespace bulkhead::testing
