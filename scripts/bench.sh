#!/usr/bin/env bash
# make bench: run every Go benchmark once at a useful length and keep the output with the machine
# and commit, for docs/benchmarks.md. BENCHTIME (default 2s) and BENCH (regexp, default .) narrow it.
set -euo pipefail
cd "$(dirname "$0")/.."
out=var/bench/$(date -u +%Y%m%dT%H%M%SZ).txt
mkdir -p var/bench
{
  echo "# date:    $(date -u +%FT%TZ)"
  echo "# commit:  $(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
  echo "# machine: $(nproc) cores, $(free -g | awk '/Mem:/{print $2}') GiB, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
  echo "# command: go test -run '^\$' -bench '${BENCH:-.}' -benchtime ${BENCHTIME:-2s} -benchmem ./..."
} | tee "$out"
go test -run '^$' -bench "${BENCH:-.}" -benchtime "${BENCHTIME:-2s}" -benchmem -timeout 60m ./... 2>&1 \
  | grep -E '^(Benchmark|ok|FAIL|---|pkg:)|records/s|/s' | tee -a "$out"
echo "saved to $out"
