#!/usr/bin/env bash
# Compares `lifeboat snapshot save` with the standard tools on the same etcd data, in one run:
#   A  etcdctl snapshot save                (the raw snapshot, no archive)
#   B  etcdctl snapshot save && zip -6      (RKE's way: a file, then Deflate -6 into <name>.zip)
#   L  lifeboat snapshot save               (one pass: stream, hash, ISA-L Deflate, archive)
#   C  lifeboat snapshot save --compression best   (libdeflate level 6 chunks on every core)
# and prints the median times, the ratios L/A, C/A and B/L, archive sizes (L and C vs zip -6)
# and peak RSS. Targets (issue 2): L <= 1.25x A, archive <= 1.2x zip -6's, Lifeboat's peak RSS
# <= 64 MiB; (issue 12) an archive no larger than zip -6's within 1.1x A.
#
# Usage: benchmarks/save.sh [--mib 1024] [--reps 3] [--compression fast] [--keep]
# Fills a fresh single-member etcd (quota 16 GiB) with benchmarks/fill-etcd (seeded data:
# Kubernetes-like JSON and a share of random values). Not part of CI.
set -euo pipefail
mib=1024 reps=3 compression=fast keep=0
options="compression"
source "$(dirname "$0")/args.sh"
parse_args "$@"
source "$(dirname "$0")/lib.sh"

for i in $(seq 1 "$reps"); do
  rm -rf "$work/out" && mkdir -p "$work/out"
  run A etcdctl --endpoints "$endpoint" snapshot save "$work/out/a.db"
  run B bash -c "etcdctl --endpoints $endpoint snapshot save $work/out/b.db && cd $work/out && zip -q -6 b.zip b.db"
  run L "$lifeboat" snapshot save --endpoints "$endpoint" --snapshot-dir "$work/out" --name "l$i" --compression "$compression"
  run C "$lifeboat" snapshot save --endpoints "$endpoint" --snapshot-dir "$work/out" --name "c$i" --compression best
done

db=$(stat -c %s "$work/out/a.db")
zip6=$(stat -c %s "$work/out/b.zip")
archive=$(stat -c %s "$work/out/l$reps.zip")
best=$(stat -c %s "$work/out/c$reps.zip")
a=$(median "${seconds[A]}") b=$(median "${seconds[B]}") l=$(median "${seconds[L]}") c=$(median "${seconds[C]}")
printf '\n%s MiB of values, db %s bytes, %s reps (median seconds)\n' "$mib" "$db" "$reps"
printf '  A etcdctl snapshot save            %6.2f s   peak RSS %6.1f MiB\n' "$a" "$(calc "${rss[A]}/1024")"
printf '  B etcdctl snapshot save && zip -6  %6.2f s   archive %s bytes\n' "$b" "$zip6"
printf '  L lifeboat snapshot save (%s)    %6.2f s   peak RSS %6.1f MiB   archive %s bytes\n' \
  "$compression" "$l" "$(calc "${rss[L]}/1024")" "$archive"
printf '  C lifeboat snapshot save (best)    %6.2f s   peak RSS %6.1f MiB   archive %s bytes\n' \
  "$c" "$(calc "${rss[C]}/1024")" "$best"
printf '\nratios\n'
printf '  L / A (time, target <= 1.25)          %.2f\n' "$(calc "$l/$a")"
printf '  B / L (speed-up over RKE'"'"'s way)        %.2f\n' "$(calc "$b/$l")"
printf '  archive L / zip -6 (target <= 1.2)    %.3f\n' "$(calc "$archive/$zip6")"
printf '  peak RSS L (target <= 64 MiB)         %.1f MiB\n' "$(calc "${rss[L]}/1024")"
