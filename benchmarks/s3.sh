#!/usr/bin/env bash
# Compares saving to local disk and S3 at once with the standard tools, on the same etcd data and
# the same S3 server (moto on 127.0.0.1), in one run:
#   A  etcdctl snapshot save                                   (the raw snapshot alone)
#   M  etcdctl snapshot save & aws s3 cp of a file as large as Lifeboat's archive, at the same
#      time: the work this machine must do whatever the tool (the limit)
#   R  etcdctl snapshot save && zip -6 && aws s3 cp            (RKE's sequence)
#   S  lifeboat snapshot save                                  (local only)
#   L  lifeboat snapshot save --s3                             (one pass: archive and upload together)
#   E  lifeboat snapshot save --s3 --age-recipient ...         (the upload encrypted with age)
# Prints median times and the ratios the issues target: L/M <= 1.05, E/L <= 1.05, S/A <= 1.1,
# the archive no larger than zip -6's, and Lifeboat's peak RSS (<= 64 MiB + parts in flight x
# part size = 96 MiB by default).
#
# Usage: benchmarks/s3.sh [--mib 1024] [--reps 3] [--keep]. Needs moto[server], awscli and age.
# Not part of CI.
set -euo pipefail
mib=1024 reps=3 keep=0
source "$(dirname "$0")/args.sh"
parse_args "$@"
source "$(dirname "$0")/lib.sh"

export AWS_ACCESS_KEY_ID=bench AWS_SECRET_ACCESS_KEY=bench AWS_EC2_METADATA_DISABLED=true AWS_PAGER=
# moto over HTTPS (as S3 is reached in production: Lifeboat then signs parts UNSIGNED-PAYLOAD
# with a CRC-32C), with a self-signed certificate both sides trust.
openssl req -x509 -newkey rsa:2048 -nodes -keyout "$work/moto-key.pem" -out "$work/moto-cert.pem" -days 1 \
  -subj /CN=127.0.0.1 -addext subjectAltName=IP:127.0.0.1 >/dev/null 2>&1
export AWS_CA_BUNDLE=$work/moto-cert.pem
# A fresh moto (it keeps objects in memory) for each measured upload, so every side meets the same server.
moto_pid=
fresh_moto() {
  [ -z "$moto_pid" ] || { kill "$moto_pid"; wait "$moto_pid" 2>/dev/null || true; }
  port=$(python3 -c "import socket; s=socket.socket(); s.bind(('127.0.0.1',0)); print(s.getsockname()[1])")
  python3 -m moto.server -H 127.0.0.1 -p "$port" -c "$work/moto-cert.pem" -k "$work/moto-key.pem" >"$work/moto.log" 2>&1 &
  moto_pid=$!
  s3=https://127.0.0.1:$port
  for _ in $(seq 1 100); do aws --endpoint-url "$s3" --region us-east-1 s3 mb s3://bench >/dev/null 2>&1 && return; sleep 0.1; done
  echo "moto did not start" >&2; exit 1
}
cleanup_hooks+=('[ -z "$moto_pid" ] || kill "$moto_pid"')
age-keygen -o "$work/ops.key" 2>"$work/keygen.log"
recipient=$(grep -o 'age1[0-9a-z]*' "$work/keygen.log" | head -1)

# The limit's upload: a file as large as Lifeboat's archive (from an unmeasured first save).
mkdir -p "$work/warm"
"$lifeboat" snapshot save --endpoints "$endpoint" --snapshot-dir "$work/warm" --name warm >/dev/null
cp "$work/warm/warm.zip" "$work/limit.zip"

# Each step starts on a quiet disk: what earlier steps wrote is synced and removed first (the
# runs write 1-2 GB each; without this, a step pays for the last one's writeback).
settle() { sync; rm -f "$work"/out/*.db "$work"/out/*.zip "$work"/out/*.zip.age "$work"/out/*.json; sync; }
for i in $(seq 1 "$reps"); do
  rm -rf "$work/out" && mkdir -p "$work/out"
  run A etcdctl --endpoints "$endpoint" snapshot save "$work/out/a.db"
  dbsize=$(stat -c %s "$work/out/a.db"); settle
  run S "$lifeboat" snapshot save --endpoints "$endpoint" --snapshot-dir "$work/out" --name "s$i"
  settle; fresh_moto
  run M bash -c "etcdctl --endpoints $endpoint snapshot save $work/out/m.db >/dev/null & \
    aws --endpoint-url $s3 --region us-east-1 s3 cp --quiet $work/limit.zip s3://bench/limit/m$i.zip; wait \$!"
  settle; fresh_moto
  run L "$lifeboat" snapshot save --endpoints "$endpoint" --snapshot-dir "$work/out" --name "l$i" \
    --s3 --s3-endpoint "$s3" --s3-endpoint-ca "$work/moto-cert.pem" --bucket-name bench --folder lifeboat
  ours=$(stat -c %s "$work/out/l$i.zip"); settle; fresh_moto
  run E "$lifeboat" snapshot save --endpoints "$endpoint" --snapshot-dir "$work/out" --name "e$i" \
    --s3 --s3-endpoint "$s3" --s3-endpoint-ca "$work/moto-cert.pem" --bucket-name bench --folder lifeboat \
    --age-recipient "$recipient"
  settle; fresh_moto
  run R bash -c "etcdctl --endpoints $endpoint snapshot save $work/out/r.db && cd $work/out && zip -q -6 r$i.zip r.db \
    && aws --endpoint-url $s3 --region us-east-1 s3 cp --quiet r$i.zip s3://bench/rke/r$i.zip"
  zip6=$(stat -c %s "$work/out/r$i.zip"); settle
done

a=$(median "${seconds[A]}") m=$(median "${seconds[M]}") r=$(median "${seconds[R]}") s=$(median "${seconds[S]}")
l=$(median "${seconds[L]}") e=$(median "${seconds[E]}")
printf '\n%s MiB of values, db %s bytes, %s reps (median seconds), S3: moto over HTTPS on loopback\n' \
  "$mib" "$dbsize" "$reps"
printf '  A etcdctl snapshot save                          %7.2f s\n' "$a"
printf '  M etcdctl save & aws s3 cp (the limit)           %7.2f s\n' "$m"
printf '  R etcdctl save && zip -6 && aws s3 cp            %7.2f s\n' "$r"
printf '  S lifeboat snapshot save                         %7.2f s   peak RSS %6.1f MiB\n' "$s" "$(calc "${rss[S]}/1024")"
printf '  L lifeboat snapshot save --s3                    %7.2f s   peak RSS %6.1f MiB\n' "$l" "$(calc "${rss[L]}/1024")"
printf '  E lifeboat snapshot save --s3 --age-recipient    %7.2f s   peak RSS %6.1f MiB\n' "$e" "$(calc "${rss[E]}/1024")"
printf '  archive: lifeboat %s bytes, zip -6 %s bytes\n' "$ours" "$zip6"
printf '\nratios\n'
printf '  L / M (target <= 1.05)                 %.2f\n' "$(calc "$l/$m")"
printf '  E / L (target <= 1.05)                 %.2f\n' "$(calc "$e/$l")"
printf '  S / A (target <= 1.1)                  %.2f\n' "$(calc "$s/$a")"
printf '  archive / zip -6 (target <= 1.0)       %.3f\n' "$(calc "$ours/$zip6")"
printf '  R / L (speed-up over RKE'"'"'s sequence)   %.2f\n' "$(calc "$r/$l")"
printf '  peak RSS L, E (target <= 96 MiB)       %.1f, %.1f MiB (the highest of the reps)\n' "$(calc "${rss[L]}/1024")" "$(calc "${rss[E]}/1024")"
printf '  each rep (KiB): L%s, E%s\n' "${rsses[L]}" "${rsses[E]}"
