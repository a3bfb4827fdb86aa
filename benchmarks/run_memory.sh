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
echo "== 256 MiB DMA stream DRAM -> L3 (datacenter.json, real random data, one core, best of 3)"
printf '%-7s %9s %14s %16s %20s %18s\n' path "wall [s]" "sim. GB/s" "GB per wall-s" "accesses per wall-s" "x memcpy floor"
for path in trains burst tlm; do
    best=
    for _ in 1 2 3; do
        out=$("$bench" stream configs/datacenter.json 256 $([[ $path != trains ]] && echo $path))
        [[ $(get exact "$out") == yes ]] || { echo "data mismatch" >&2; exit 1; }
        if [[ -z $best ]] || awk -v a="$(get wall_s "$out")" -v b="$(get wall_s "$best")" 'BEGIN { exit !(a < b) }'; then best=$out; fi
    done
    awk -v p=$path -v w="$(get wall_s "$best")" -v g="$(get simulated_gb_per_s "$best")" -v b="$(get bytes_per_wall_s "$best")" \
        -v a="$(get accesses_per_wall_s "$best")" -v m="$(get memcpy_bytes_per_wall_s "$best")" \
        'BEGIN { printf "%-7s %9.3f %14.1f %16.2f %18.1f M %17.1fx\n", p, w, g, b / 1e9, a / 1e6, m / b }'
done
echo "(trains: movers copy through DMI and book runs of bursts as 1 KiB trains on the same ports (the"
echo " default); burst: DMI, every 64-byte burst booked on its own; tlm: one b_transport per read and per"
echo " write of every burst. Same simulated time and bytes; target >= 2 GB per wall-s.)"
