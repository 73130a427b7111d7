#!/usr/bin/env bash
# Compares `lifeboat snapshot verify` (and `drill`) with the standard tools doing the same checks
# on the same archive, in one run:
#   T  unzip -p NAME.zip | openssl dgst -sha256; openssl dgst -sha256 NAME.zip
#      (inflate with CRC-32, the database's SHA-256, the archive's SHA-256: one after another)
#   V  lifeboat snapshot verify NAME        (the same checks, plus etcd's trailer and the manifest)
#   D  lifeboat snapshot drill NAME         (verify, read offline, restore, serve, compare)
# and, once each, A `etcdctl snapshot save` against S `lifeboat snapshot save` of the same member
# (the save ratio at this size); prints the median times, the ratios and peak RSS.
# Targets (issue 13): V <= 0.5x T; every Lifeboat process's peak RSS <= 64 MiB.
#
# Usage: benchmarks/verify.sh [--mib 1024] [--reps 3] [--keep]
# Fills a fresh single-member etcd with benchmarks/fill-etcd (seeded). Not part of CI.
set -euo pipefail
mib=1024 reps=3 keep=0
source "$(dirname "$0")/args.sh"
parse_args "$@"
source "$(dirname "$0")/lib.sh"
command -v openssl >/dev/null && command -v unzip >/dev/null || { echo "needs openssl and unzip" >&2; exit 1; }

mkdir -p "$work/out" "$work/scratch"
run A etcdctl --endpoints "$endpoint" snapshot save "$work/a.db"
rm -f "$work/a.db"
run S "$lifeboat" snapshot save --endpoints "$endpoint" --snapshot-dir "$work/out" --name v
# /usr/bin/time's peak RSS of the drill includes the children it reaps (the restore tool, the
# throwaway etcd): the CLI's own peak is sampled from /proc (VmHWM) while it runs.
drill_own_kib=0
sample_drill() {
  "$lifeboat" snapshot drill v --snapshot-dir "$work/out" --scratch-dir "$work/scratch" >/dev/null 2>&1 &
  local pid=$! hwm
  while kill -0 "$pid" 2>/dev/null; do
    hwm=$(awk '/VmHWM/ {print $2}' "/proc/$pid/status" 2>/dev/null || true)
    [ -n "$hwm" ] && [ "$hwm" -gt "$drill_own_kib" ] && drill_own_kib=$hwm
    sleep 0.05
  done
  wait "$pid"
}
for i in $(seq 1 "$reps"); do
  run T bash -c "unzip -p $work/out/v.zip | openssl dgst -sha256 && openssl dgst -sha256 $work/out/v.zip"
  run V "$lifeboat" snapshot verify v --snapshot-dir "$work/out"
  run D "$lifeboat" snapshot drill v --snapshot-dir "$work/out" --scratch-dir "$work/scratch"
done
sample_drill

archive=$(stat -c %s "$work/out/v.zip")
t=$(median "${seconds[T]}") v=$(median "${seconds[V]}") d=$(median "${seconds[D]}")
printf '\n%s MiB of values, archive %s bytes, %s reps (median seconds)\n' "$mib" "$archive" "$reps"
printf '  T unzip -p | openssl; openssl     %6.2f s\n' "$t"
printf '  V lifeboat snapshot verify        %6.2f s   peak RSS %6.1f MiB\n' "$v" "$(calc "${rss[V]}/1024")"
printf '  D lifeboat snapshot drill         %6.2f s   peak RSS %6.1f MiB (the CLI itself; with the restore tool and etcd %.1f MiB)\n' \
  "$d" "$(calc "$drill_own_kib/1024")" "$(calc "${rss[D]}/1024")"
printf '  A etcdctl snapshot save           %6.2f s\n' "$(median "${seconds[A]}")"
printf '  S lifeboat snapshot save          %6.2f s   peak RSS %6.1f MiB\n' "$(median "${seconds[S]}")" "$(calc "${rss[S]}/1024")"
printf '\nratios\n'
printf '  V / T (target <= 0.5)                 %.2f\n' "$(calc "$v/$t")"
printf '  S / A (save, target <= 1.25)          %.2f\n' "$(calc "$(median "${seconds[S]}")/$(median "${seconds[A]}")")"
