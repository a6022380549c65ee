#!/usr/bin/env bash
# Runs the whole suite with node's test runner, one file at a time (interop tests share the machine).
set -euo pipefail
cd "$(dirname "$0")/.."
mapfile -t files < <(find test/unit test/interop -name '*.test.ts' | sort)
exec node --import tsx --test --test-concurrency=1 --test-reporter=spec "${files[@]}"
