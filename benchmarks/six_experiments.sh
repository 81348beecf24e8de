#!/usr/bin/env bash
# The notebook's six experiments plus length-aware batching, for several seeds,
# then a table (mean ± std per epoch) and learning curves in docs/results/.
#   bash benchmarks/six_experiments.sh [RUNS_DIR] [SEEDS]   (needs the IMDB data)
set -euo pipefail
runs=${1:-runs}
seeds=${2:-3}
names=()
for seed in $(seq 0 $((seeds - 1))); do
  for cell in rnn lstm; do
    for len in 64 512 1024; do
      python run.py --config configs/$cell.py --config.seq_len=$len \
          --config.seed=$seed --config.progress=False \
          --workdir "$runs/$cell$len-seed$seed"
    done
  done
  for len in 512 1024; do
    python run.py --config configs/lstm_buckets.py --config.seq_len=$len \
        --config.seed=$seed --config.progress=False \
        --workdir "$runs/lstm${len}_buckets-seed$seed"
  done
done
for name in rnn64 rnn512 rnn1024 lstm64 lstm512 lstm1024 lstm512_buckets \
    lstm1024_buckets; do
  for seed in $(seq 0 $((seeds - 1))); do names+=("$runs/$name-seed$seed"); done
done
python -m flax_sentiment.report "${names[@]}" --out docs/results/six_experiments
