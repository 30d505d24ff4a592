#!/usr/bin/env bash
# Run every native Go fuzz target of the module, one after the other, each
# for a bounded time, and print how many inputs each one executed.
#
#   scripts/fuzz.sh                 # FUZZTIME=20s per target
#   FUZZTIME=2m scripts/fuzz.sh     # longer
#   FUZZTIME=10000x scripts/fuzz.sh # a number of executions instead
#
# Environment:
#   FUZZTIME          -fuzztime per target (default 20s)
#   FUZZMINIMIZETIME  -fuzzminimizetime (default 5s): Go spends up to this
#                     long minimizing every new interesting input, and
#                     counts no executions meanwhile; its own default (60s)
#                     would eat a short FUZZTIME whole
#   FUZZPARALLEL      -parallel: fuzzing workers per target (default: Go's,
#                     GOMAXPROCS)
#   FUZZLOGDIR        where each target's full output goes (default: a new
#                     temporary directory, kept when a target fails)
#   GO                the go command (default go); GOFLAGS applies as usual
#                     (e.g. GOFLAGS=-tags=embed, or -timeout=30m when a
#                     FUZZTIME above go test's 10m default timeout is wanted)
#
# Targets are found with `go test -list '^Fuzz' ./...`. A target that skips
# (e.g. one needing root, run unprivileged) is reported as skipped. Crashers
# land in the package's testdata/fuzz/<Target>/ as usual. The exit status is
# 0 when every target ran (or skipped) without a failure, 1 otherwise.
set -euo pipefail

GO=${GO:-go}
FUZZTIME=${FUZZTIME:-20s}
FUZZMINIMIZETIME=${FUZZMINIMIZETIME:-5s}

cd "$(dirname "$0")/.."

logdir=${FUZZLOGDIR:-}
if [[ -z $logdir ]]; then
	logdir=$(mktemp -d "${TMPDIR:-/tmp}/traceflow-fast-fuzz.XXXXXX")
fi
mkdir -p "$logdir"

# Discovery: `go test -list` prints a package's matching names, then its
# "ok <package> <time>" line ("FAIL <package> [build failed]" when it does
# not build).
listing=$("$GO" test -list '^Fuzz' ./... 2>&1) || true
targets=()    # "package target" pairs
broken=()     # packages that did not build
pending=()
while IFS= read -r line; do
	case $line in
	Fuzz*)
		pending+=("${line%%[[:space:]]*}")
		;;
	ok[[:space:]]*)
		pkg=$(awk '{print $2}' <<<"$line")
		for t in "${pending[@]+"${pending[@]}"}"; do
			targets+=("$pkg $t")
		done
		pending=()
		;;
	FAIL[[:space:]]*)
		pkg=$(awk '{print $2}' <<<"$line")
		[[ $pkg == "" ]] || broken+=("$pkg")
		pending=()
		;;
	esac
done <<<"$listing"

if ((${#broken[@]} > 0)); then
	printf '%s\n' "$listing" >"$logdir/list.log"
	echo "fuzz.sh: cannot list the fuzz targets of: ${broken[*]} (see $logdir/list.log)" >&2
fi
if ((${#targets[@]} == 0)); then
	echo "fuzz.sh: no fuzz targets found" >&2
	exit 1
fi

echo "fuzz.sh: ${#targets[@]} targets, FUZZTIME=$FUZZTIME each, logs in $logdir"
flags=(-run '^$' -fuzztime "$FUZZTIME" -fuzzminimizetime "$FUZZMINIMIZETIME")
if [[ -n ${FUZZPARALLEL:-} ]]; then
	flags+=(-parallel "$FUZZPARALLEL")
fi

# Column widths of the summary.
tw=6 pw=7
for entry in "${targets[@]}"; do
	pkg=${entry% *}
	target=${entry#* }
	((${#target} > tw)) && tw=${#target}
	((${#pkg} > pw)) && pw=${#pkg}
done

results=()
failed=0
for entry in "${targets[@]}"; do
	pkg=${entry% *}
	target=${entry#* }
	log="$logdir/${pkg//\//_}.$target.log"
	echo "== $target ($pkg)"
	status=0
	"$GO" test "${flags[@]}" -fuzz "^${target}\$" "$pkg" >"$log" 2>&1 || status=$?
	# "fuzz: elapsed: 10s, execs: 123456 (12345/sec), new interesting: ..."
	execs=$(sed -n 's/^fuzz: elapsed: .*, execs: \([0-9][0-9]*\) .*/\1/p' "$log" | tail -n 1)
	interesting=$(sed -n 's/^fuzz: elapsed: .*, new interesting: \([0-9][0-9]*\) (total: \([0-9][0-9]*\)).*/\1 new, \2 in corpus/p' "$log" | tail -n 1)
	if ((status != 0)); then
		result=FAIL
		failed=1
		sed -n '/^--- FAIL/,$p' "$log" | head -n 40 | sed 's/^/   /'
	elif grep -q -- '^--- SKIP' "$log"; then
		result="skipped: $(sed -n 's/^ *[^ ]*_test\.go:[0-9]*: //p' "$log" | head -n 1)"
	else
		result=ok
	fi
	results+=("$(printf '%-*s  %-*s  %12s  %s' "$tw" "$target" "$pw" "$pkg" "${execs:-0}" "$result${interesting:+ ($interesting)}")")
done

echo
printf '%-*s  %-*s  %12s  %s\n' "$tw" TARGET "$pw" PACKAGE EXECS RESULT
printf '%s\n' "${results[@]}"
if ((${#broken[@]} > 0)); then
	failed=1
fi
if ((failed)); then
	echo "fuzz.sh: failures; logs in $logdir" >&2
	exit 1
fi
if [[ -z ${FUZZLOGDIR:-} ]]; then
	rm -rf "$logdir"
fi
