#!/usr/bin/env bash
# Memory-hierarchy benchmarks: elaboration time and peak RSS for every config, and the
# throughput of a 256 MiB DMA stream of real data on datacenter.json. Prints a table with
# the targets of issue 3 and the public reference implementation's figures beside ours.
#   benchmarks/run_memory.sh [BUILD_DIR]      (default: build; needs target bench-memory)
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build}
bench=$build/bin/bench-memory
[[ -x $bench ]] || cmake --build "$build" --target bench-memory -j2 >/dev/null
get() { awk -v k="$1" '$1 == k { print $2 }' <<<"$2"; }

echo "== Elaboration (KpuPlatform + sc_start(0)), one process per config"
printf '%-14s %9s %12s %14s\n' config modules "wall [s]" "peak RSS [MiB]"
for cfg in configs/*.json; do
    out=$("$bench" elaborate "$cfg")
    printf '%-14s %9s %12.3f %14.0f\n' "$(get config "$out")" "$(get modules "$out")" \
        "$(get elaborate_s "$out")" "$(get peak_rss_mib "$out")"
    if [[ $(get config "$out") == datacenter ]]; then dc_s=$(get elaborate_s "$out"); dc_mib=$(get peak_rss_mib "$out"); fi
done
awk -v s="$dc_s" -v m="$dc_mib" 'BEGIN {
    printf "datacenter: %.2f s (target < 2 s; reference 97-122 s: %.0fx-%.0fx faster), ", s, 97 / s, 122 / s
    printf "%.0f MiB (target < 1024 MiB; reference 9 GB: %.0fx smaller)\n", m, 9 * 1024 / m }'

echo
echo "== 256 MiB DMA stream DRAM -> L3 (datacenter.json, real random data, one core)"
out=$("$bench" stream configs/datacenter.json 256)
awk -v b="$(get bytes_per_wall_s "$out")" -v t="$(get transactions_per_wall_s "$out")" \
    -v m="$(get memcpy_bytes_per_wall_s "$out")" -v w="$(get wall_s "$out")" -v g="$(get simulated_gb_per_s "$out")" \
    -v x="$(get exact "$out")" -v n="$(get transactions "$out")" 'BEGIN {
    printf "wall %.3f s; simulated bandwidth %.1f GB/s; data byte-exact: %s\n", w, g, x
    printf "simulated traffic: %.2f GB per wall-second (target >= 2)\n", b / 1e9
    printf "TLM transactions:  %.1f M per wall-second (%d transactions)\n", t / 1e6, n
    printf "memcpy floor:      %.2f GB/s -> simulation costs %.1fx the bare copy\n", m / 1e9, m / b }'
