# Shared by the benchmark scripts: a release build, a filled single-member etcd, timing helpers.
# Source it after setting `mib`; it defines $lifeboat, $work, $endpoint, run, median, calc.
set -euo pipefail
[ -n "${local_up_args+x}" ] || local_up_args=()
cd "$(dirname "${BASH_SOURCE[0]}")/.."
# The team's seeded filler (../shared/bench/fill-etcd), copied here so a fresh clone has it.
fill=${FILL_ETCD:-benchmarks/fill-etcd}
[ -x "$fill" ] || fill="python3 $fill"
command -v /usr/bin/time >/dev/null || { echo "needs /usr/bin/time (apt-get install time)" >&2; exit 1; }

swift build -c release --product lifeboat >/dev/null
lifeboat=$PWD/.build/release/lifeboat
work=$(mktemp -d "${TMPDIR:-/tmp}/lifeboat-bench-XXXX")
cleanup_hooks=()
cleanup() {
  for hook in "${cleanup_hooks[@]}"; do eval "$hook" || true; done
  $lifeboat local down --dir "$work/cluster" >/dev/null 2>&1 || true
  [ "${keep:-0}" = 1 ] || rm -rf "$work"
}
trap cleanup EXIT

# Scripts may set `nodes` (default 1) and `local_up_args` (an array: extra `local up` flags).
$lifeboat local up --nodes "${nodes:-1}" --quota-backend-bytes $((16 << 30)) --dir "$work/cluster" \
  "${local_up_args[@]}" >/dev/null
endpoints=$(sed -n 's/^export ETCDCTL_ENDPOINTS=//p' <<<"$($lifeboat local env --dir "$work/cluster")")
endpoint=${endpoints%%,*}
echo "filling $endpoint with $mib MiB ..."
$fill "$endpoint" --mib "$mib" 2>/dev/null
export ETCDCTL_API=3

# run NAME CMD...: times CMD; appends its seconds to seconds[NAME]; rss[NAME] is the highest
# peak RSS (KiB) of its runs, rsses[NAME] all of them.
declare -A seconds rss rsses
run() {
  local name=$1; shift
  if ! /usr/bin/time -o "$work/time" -f "%e %M" "$@" >"$work/last.log" 2>&1; then
    echo "benchmark step $name failed:" >&2; cat "$work/last.log" >&2; exit 1
  fi
  local out
  out=$(tail -1 "$work/time")
  seconds[$name]="${seconds[$name]:-} ${out% *}"
  rsses[$name]="${rsses[$name]:-} ${out#* }"
  [ "${out#* }" -le "${rss[$name]:-0}" ] || rss[$name]=${out#* }
}
calc() { awk "BEGIN { print $1 }"; }
median() { tr ' ' '\n' <<<"$1" | grep -v '^$' | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
