# Shared by the benchmark scripts: `parse_args "$@"` sets mib, reps and keep from --mib N,
# --reps N and --keep, and each of the script's own `options` (a space-separated list of
# variable names, set before the call with their defaults) from --NAME VALUE.
parse_args() {
  while [ $# -gt 0 ]; do
    if [ "$1" = --keep ]; then
      keep=1
      shift
      continue
    fi
    local name=${1#--}
    if [[ "$1" != --* || " mib reps ${options:-} " != *" $name "* ]]; then
      echo "unknown argument $1" >&2
      exit 2
    fi
    [ $# -ge 2 ] || { echo "$1 needs a value" >&2; exit 2; }
    printf -v "$name" '%s' "$2"
    shift 2
  done
}
