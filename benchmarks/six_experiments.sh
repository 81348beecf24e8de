#!/usr/bin/env bash
# The notebook's six experiments plus length-aware batching, one after another.
#   bash benchmarks/six_experiments.sh [RUNS_DIR]   (needs the IMDB data; see README)
set -euo pipefail
runs=${1:-runs}
for cell in rnn lstm; do
  for len in 64 512 1024; do
    python run.py --config configs/$cell.py --config.seq_len=$len --workdir "$runs/$cell$len"
  done
done
for len in 512 1024; do
  python run.py --config configs/lstm_buckets.py --config.seq_len=$len \
      --workdir "$runs/lstm${len}_buckets"
done
python benchmarks/results_table.py "$runs"/rnn64 "$runs"/rnn512 "$runs"/rnn1024 \
    "$runs"/lstm64 "$runs"/lstm512 "$runs"/lstm1024 \
    "$runs"/lstm512_buckets "$runs"/lstm1024_buckets
