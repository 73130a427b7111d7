#!/usr/bin/env bash
# Compares restoring from S3 with the manual way, on the same snapshot in the same S3 server
# (moto on 127.0.0.1), in one run:
#   M  aws s3 cp + unzip + etcdctl snapshot restore          (the manual way, for ONE member)
#   L  lifeboat snapshot restore --s3 of the 3-member cluster  (fetch on one node, serve to the
#      other two over mTLS, verify on every node, stage, swap, start, check)
#   D  with --runtime docker, also: the same restore on RKE-like nodes (a Docker engine per node,
#      etcd in its container), restoring the same S3 object in the same run
# Prints median times and L/M (target <= 1.5, issue 13), and D/L (docker against supervised,
# target <= 1.2). `--nodes 1` restores a one-member cluster (an 8 GiB restore of three members
# needs about 90 GB of free disk: old data, restored data, db and archive on every node).
#
# (unzip exits 1 on its warning about the absolute entry paths RKE writes: that is success.)
# `--from local` restores from the first node's own copy instead (M copies it with cp): moto
# serves a multi-GB object at a few MB/s, which then measures only moto.
# Usage: benchmarks/restore.sh [--mib 1024] [--reps 3] [--nodes 3] [--from s3|local] [--runtime supervised|docker] [--keep].
# Needs moto[server], awscli, unzip (docker: docker.io and root). Not part of CI.
set -euo pipefail
mib=1024 reps=3 keep=0 runtime=supervised nodes=3 from=s3
options="runtime nodes from"
source "$(dirname "$0")/args.sh"
parse_args "$@"
export AWS_ACCESS_KEY_ID=bench AWS_SECRET_ACCESS_KEY=bench AWS_EC2_METADATA_DISABLED=true AWS_PAGER=
port=$(python3 -c "import socket; s=socket.socket(); s.bind(('127.0.0.1',0)); print(s.getsockname()[1])")
s3=http://127.0.0.1:$port
moto_log=$(mktemp "${TMPDIR:-/tmp}/lifeboat-bench-moto-XXXX.log")
python3 -m moto.server -H 127.0.0.1 -p "$port" >"$moto_log" 2>&1 &
moto_pid=$!
for _ in $(seq 1 100); do aws --endpoint-url "$s3" --region us-east-1 s3 mb s3://bench >/dev/null 2>&1 && break; sleep 0.1; done

local_up_args=(--s3 --s3-endpoint "$s3" --s3-insecure-http --bucket-name bench --folder restore --region us-east-1)
# From a node's own copy, nothing goes to S3 (moto also fails to complete a multi-GB upload).
if [ "$from" = local ]; then local_up_args=(); fi
source "$(dirname "$0")/lib.sh"
cleanup_hooks+=('kill "$moto_pid"' 'rm -f "$moto_log"')
config=$work/cluster/cluster.yml

echo "saving and uploading the snapshot ..."
"$lifeboat" snapshot save --config "$config" --name bench >"$work/save.log" 2>&1 || { cat "$work/save.log" >&2; exit 1; }
db_bytes=$(python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['dbSize'])" "$work/cluster/node1/snapshots/bench.manifest.json")
archive_bytes=$(stat -c %s "$work/cluster/node1/snapshots/bench.zip")
if [ "$from" = s3 ]; then
  # Restore from S3: no node keeps a local copy.
  rm -f "$work"/cluster/node*/snapshots/bench.*
  fetch="aws --endpoint-url $s3 --region us-east-1 s3 cp --quiet s3://bench/restore/bench.zip bench.zip"
  from_flag=(--s3)
else
  # Restore from the first node's copy; the others are removed (it serves them).
  for dir in "$work"/cluster/node*/snapshots; do [ "$dir" = "$work/cluster/node1/snapshots" ] || rm -f "$dir"/bench.*; done
  cp "$work/cluster/node1/snapshots/bench.zip" "$work/bench.zip"
  fetch="cp $work/bench.zip bench.zip"
  from_flag=()
fi

if [ "$runtime" = docker ]; then
  # Its own 3 nodes, with the same S3 settings, a quota that holds the db, and TLS (as RKE's).
  "$lifeboat" local up --nodes 3 --runtime docker --quota-backend-bytes $((16 << 30)) --dir "$work/docker" \
    "${local_up_args[@]}" >/dev/null
  cleanup_hooks+=('"$lifeboat" local down --dir "$work/docker" >/dev/null 2>&1')
fi

peer=$(python3 -c "import socket; s=socket.socket(); s.bind(('127.0.0.1',0)); print(s.getsockname()[1])")
for i in $(seq 1 "$reps"); do
  rm -rf "$work/manual" && mkdir -p "$work/manual"
  run M bash -c "cd $work/manual && $fetch \
    && { unzip -q bench.zip || [ \$? -eq 1 ]; } && ETCDCTL_API=3 etcdctl snapshot restore backup/bench --data-dir data --name etcd-node1 \
       --initial-cluster etcd-node1=http://127.0.0.1:$peer --initial-cluster-token etcd-cluster-1 \
       --initial-advertise-peer-urls http://127.0.0.1:$peer"
  rm -rf "$work/manual"
  run L "$lifeboat" snapshot restore bench --config "$config" "${from_flag[@]}" --yes
  rm -rf "$work"/cluster/node*/data.lifeboat-old-*
  if [ "$runtime" = docker ]; then
    # The archive's state file belongs to the other cluster: keep this one's.
    run D "$lifeboat" snapshot restore bench --config "$work/docker/cluster.yml" --s3 --use-local-state --yes
    rm -rf "$work"/docker/node*/var/lib/etcd.lifeboat-old-*
  fi
done

m=$(median "${seconds[M]}") l=$(median "${seconds[L]}")
printf '\n%s MiB of values, db %s bytes, archive %s bytes, %s reps (median seconds), from %s\n' \
  "$mib" "$db_bytes" "$archive_bytes" "$reps" "$([ "$from" = s3 ] && echo "S3 (moto on loopback)" || echo "node1's own copy")"
printf '  M %s + unzip + etcdctl restore (1 member)   %6.2f s   peak RSS %7.1f MiB\n' "$([ "$from" = s3 ] && echo "aws s3 cp" || echo "cp       ")" "$m" "$(calc "${rss[M]}/1024")"
printf '  L lifeboat snapshot restore %s (%s members)    %6.2f s   peak RSS %7.1f MiB (the CLI; agents do the work)\n' "${from_flag[*]:-(local)}" "$nodes" "$l" "$(calc "${rss[L]}/1024")"
if [ "$runtime" = docker ]; then
  d=$(median "${seconds[D]}")
  printf '  D the same on docker nodes (3 members)             %6.2f s   peak RSS %7.1f MiB\n' "$d" "$(calc "${rss[D]}/1024")"
fi
printf '\nratio\n'
printf '  L / M (target <= 1.5) %.2f\n' "$(calc "$l/$m")"
if [ "$runtime" = docker ]; then printf '  D / L (target <= 1.2) %.2f\n' "$(calc "$d/$l")"; fi
