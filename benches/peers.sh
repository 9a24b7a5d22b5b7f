#!/usr/bin/env bash
# Side-by-side measurements against the Python peers of ../shared/bench, in one run, alternating
# ours and the peer's so that both see the same machine load; prints the best of N runs of each
# and the ratio. Usage (from the repository root, after ../shared/bench/setup-peers.sh):
#   benches/peers.sh [timing] [cnn] [round] [round-cifar]      (default: timing cnn round)
# The cnn and round sections also time the digits CNN with its second convolution by Winograd
# (models/digits_cnn_winograd.toml: equal up to rounding) against the same peer figure.
# The cnn, round and round-cifar sections also time stsyn with bf16 products (--precision bf16) where
# the CPU has AMX-BF16: against the same f32 peer figure, and (cnn) against PyTorch's bf16
# autocast step (benches/torch_bf16_step.py).
# Environment: PEER_PYTHON (default ~/.cache/stsyn-peers/bin/python), PEER_DIR (default
# ../shared/bench), REPEAT (default 3).
set -euo pipefail
py=${PEER_PYTHON:-${XDG_CACHE_HOME:-$HOME/.cache}/stsyn-peers/bin/python}
peers=${PEER_DIR:-$(dirname "$0")/../../shared/bench}
repeat=${REPEAT:-3}
for f in "$py" "$peers/peer_timing_numpy.py"; do
  [ -e "$f" ] || { echo "peers.sh: $f not found (set PEER_PYTHON / PEER_DIR, run setup-peers.sh)" >&2; exit 2; }
done
sections=${*:-timing cnn round}
cargo build --release -q
stsyn=./target/release/stsyn
# whether this CPU runs stsyn's bf16 products (AMX-BF16)
bf16=false
$stsyn model models/digits_cnn.toml --bench --steps 1 --precision bf16 >/dev/null 2>&1 && bf16=true

# best VALUE from a command printing "key=value" or JSON "key": value; $1 = key, $2 = max|min
best() {
  local key=$1 mode=$2; shift 2
  local best=""
  for _ in $(seq "$repeat"); do
    v=$("$@" 2>/dev/null | grep -oE "\"?$key\"?[=:] ?[0-9.e+-]+" | head -1 | grep -oE '[0-9.e+-]+$')
    best=$(python3 -c "import sys; a='$best'; b=float('$v'); print(b if a=='' else ($mode(float(a), b)))")
  done
  echo "$best"
}

report() { # name ours peer unit higher_is_better
  python3 -c "o=float('$2'); p=float('$3'); r=o/p if '$5'=='1' else p/o; print(f'{\"$1\":<44} stsyn {o:>12.4g} {\"$4\":<10} peer {p:>12.4g}   ratio {r:6.1f}x')"
}

for s in $sections; do case $s in
timing)
  for cfg in "20 5 10 200000" "100000 50000 10 40"; do
    set -- $cfg
    ours=$(best updates_per_second max $stsyn timing -M "$1" -K "$2" -U "$3" --rounds "$4" --json)
    peer=$(best updates_per_s max "$py" "$peers/peer_timing_numpy.py" "$1" "$2" "$3" "$4")
    report "timing M=$1 K=$2 U=$3 (updates/s)" "$ours" "$peer" "upd/s" 1
  done ;;
cnn)
  ours=$(best step_ms min $stsyn model models/cifar10_cnn.toml --bench --batch 100 --threads 1 --json)
  peer=$(best step_ms min "$py" "$peers/torch_cnn_bench.py" --model cifar --batch 100 --threads 1)
  report "cifar10_cnn step, batch 100, 1 thread (ms)" "$ours" "$peer" "ms" 0
  if $bf16; then
    ours=$(best step_ms min $stsyn model models/cifar10_cnn.toml --bench --batch 100 --threads 1 --precision bf16 --json)
    report "  stsyn with bf16 products vs the f32 peer" "$ours" "$peer" "ms" 0
    bf16peer=$(best step_ms min "$py" "$(dirname "$0")/torch_bf16_step.py" --batch 100 --threads 1)
    report "  stsyn bf16 vs PyTorch bf16 autocast (ms)" "$ours" "$bf16peer" "ms" 0
  fi
  ours=$(best step_ms min $stsyn model models/digits_cnn.toml --bench --batch 32 --threads 1 --json)
  peer=$(best step_ms min "$py" "$peers/torch_cnn_bench.py" --model digits --batch 32 --threads 1)
  report "digits_cnn step, batch 32, 1 thread (ms)" "$ours" "$peer" "ms" 0
  ours=$(best step_ms min $stsyn model models/digits_cnn_winograd.toml --bench --batch 32 --threads 1 --json)
  report "  the same, second convolution by Winograd" "$ours" "$peer" "ms" 0 ;;
round)
  # the peer's default 3 rounds include PyTorch's first-round warm-up; 40 rounds show the
  # steady state. stsyn's bench-round always excludes one warm-up round.
  for rounds in 3 40; do
    ours=$(best seconds_per_round min $stsyn bench-round --model digits --rounds "$rounds" --json)
    peer=$(best seconds_per_round min "$py" "$peers/torch_stsyn_round.py" --model digits --threads 2 --rounds "$rounds")
    report "STSyn round, digits CNN, 2 threads, $rounds rounds (s)" "$ours" "$peer" "s/round" 0
    ours=$(best seconds_per_round min $stsyn bench-round --model models/digits_cnn_winograd.toml --rounds "$rounds" --json)
    report "  the same, second convolution by Winograd" "$ours" "$peer" "s/round" 0
    if $bf16; then
      ours=$(best seconds_per_round min $stsyn bench-round --model digits --rounds "$rounds" --precision bf16 --json)
      report "  the same, stsyn with bf16 products (s)" "$ours" "$peer" "s/round" 0
    fi
  done ;;
round-cifar)
  repeat=1
  ours=$(best seconds_per_round min $stsyn bench-round --model cifar --json)
  peer=$(best seconds_per_round min "$py" "$peers/torch_stsyn_round.py" --model cifar --threads 2)
  report "STSyn round, cifar10_cnn, 2 threads (s)" "$ours" "$peer" "s/round" 0
  if $bf16; then
    ours=$(best seconds_per_round min $stsyn bench-round --model cifar --precision bf16 --json)
    report "  the same, stsyn with bf16 products (s)" "$ours" "$peer" "s/round" 0
  fi ;;
*) echo "unknown section $s (timing, cnn, round, round-cifar)" >&2; exit 2 ;;
esac; done
