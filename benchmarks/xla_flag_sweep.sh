#!/usr/bin/env bash
# XLA CPU flags against the default, on the configs where fixed per-step
# costs weigh most (LSTM-64, RNN-64): each setting in its own benchmark
# process, the whole sweep REPEATS times interleaved (machines drift).
#   bash benchmarks/xla_flag_sweep.sh [OUT.jsonl] [REPEATS]
set -u
out=${1:-bench_results/xla_flags.jsonl}
repeats=${2:-2}
settings=(
  ""
  "--xla_cpu_use_multi_output_fusion=true"
  "--xla_cpu_prefer_vector_width=512"
  "--xla_cpu_multi_thread_eigen=false"
  "--xla_cpu_use_onednn=true"
  "--xla_cpu_use_xnnpack=false"
)
for _ in $(seq "$repeats"); do
  for flags in "${settings[@]}"; do
    echo "XLA_FLAGS='$flags'"
    XLA_FLAGS="$flags" python benchmarks/benchmark.py --configs lstm64,rnn64 \
      --frameworks flax --steps 64 --out "$out" | grep -E "^(lstm|rnn)"
  done
done
