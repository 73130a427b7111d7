#!/usr/bin/env bash
# Compares saving to local disk and S3 at once with the standard tools, on the same etcd data and
# the same S3 server (moto on 127.0.0.1), in one run:
#   A  etcdctl snapshot save                                   (the raw snapshot alone)
#   R  etcdctl snapshot save && zip -6 && aws s3 cp            (RKE's sequence)
#   L  lifeboat snapshot save --s3                             (one pass: archive and upload together)
# Prints median times, L/A (target <= 1.5: the upload hidden behind the stream), R/L, and
# Lifeboat's peak RSS (target <= 64 MiB + parts in flight x part size = 96 MiB by default).
#
# Usage: benchmarks/s3.sh [--mib 1024] [--reps 3] [--keep]. Needs moto[server] and awscli. Not part of CI.
set -euo pipefail
mib=1024 reps=3 keep=0
source "$(dirname "$0")/args.sh"
parse_args "$@"
source "$(dirname "$0")/lib.sh"

export AWS_ACCESS_KEY_ID=bench AWS_SECRET_ACCESS_KEY=bench AWS_EC2_METADATA_DISABLED=true AWS_PAGER=
# A fresh moto (it keeps objects in memory) for each measured upload, so both sides meet the same server.
moto_pid=
fresh_moto() {
  [ -z "$moto_pid" ] || { kill "$moto_pid"; wait "$moto_pid" 2>/dev/null || true; }
  port=$(python3 -c "import socket; s=socket.socket(); s.bind(('127.0.0.1',0)); print(s.getsockname()[1])")
  python3 -m moto.server -H 127.0.0.1 -p "$port" >"$work/moto.log" 2>&1 &
  moto_pid=$!
  s3=http://127.0.0.1:$port
  for _ in $(seq 1 100); do aws --endpoint-url "$s3" --region us-east-1 s3 mb s3://bench >/dev/null 2>&1 && return; sleep 0.1; done
  echo "moto did not start" >&2; exit 1
}
cleanup_hooks+=('[ -z "$moto_pid" ] || kill "$moto_pid"')

for i in $(seq 1 "$reps"); do
  rm -rf "$work/out" && mkdir -p "$work/out"
  run A etcdctl --endpoints "$endpoint" snapshot save "$work/out/a.db"
  fresh_moto
  run R bash -c "etcdctl --endpoints $endpoint snapshot save $work/out/r.db && cd $work/out && zip -q -6 r$i.zip r.db \
    && aws --endpoint-url $s3 --region us-east-1 s3 cp --quiet r$i.zip s3://bench/rke/r$i.zip"
  fresh_moto
  run L "$lifeboat" snapshot save --endpoints "$endpoint" --snapshot-dir "$work/out" --name "l$i" \
    --s3 --s3-endpoint "$s3" --s3-insecure-http --bucket-name bench --folder lifeboat
done

a=$(median "${seconds[A]}") r=$(median "${seconds[R]}") l=$(median "${seconds[L]}")
printf '\n%s MiB of values, db %s bytes, %s reps (median seconds), S3: moto on loopback\n' \
  "$mib" "$(stat -c %s "$work/out/a.db")" "$reps"
printf '  A etcdctl snapshot save                       %6.2f s\n' "$a"
printf '  R etcdctl save && zip -6 && aws s3 cp         %6.2f s\n' "$r"
printf '  L lifeboat snapshot save --s3                 %6.2f s   peak RSS %6.1f MiB\n' "$l" "$(calc "${rss[L]}/1024")"
printf '\nratios\n'
printf '  L / A (target <= 1.5)                 %.2f\n' "$(calc "$l/$a")"
printf '  R / L (speed-up over RKE'"'"'s sequence)  %.2f\n' "$(calc "$r/$l")"
printf '  peak RSS L (target <= 96 MiB)         %.1f MiB\n' "$(calc "${rss[L]}/1024")"
