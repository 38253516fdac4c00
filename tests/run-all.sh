#!/usr/bin/env bash
# The whole test suite: installs what is missing, builds, runs unit and
# privileged tests (privileged ones need root: they make network namespaces).
set -euo pipefail
cd "$(dirname "$0")/.."
./packaging/install-deps.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j"$(nproc)"
cd build
ctest --output-on-failure -L 'unit|privileged' "$@"
