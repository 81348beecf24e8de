#!/usr/bin/env bash
# flax-sentiment on two jax stacks, with Keras and PyTorch beside them, in
# interleaved rounds on one machine (absolute times drift here between runs;
# interleaving puts every framework in each stretch of the drift).
#
#   benchmarks/stack_compare.sh NEW_PYTHON OLD_PYTHON OUT.jsonl [ROUNDS]
#
# NEW_PYTHON: a venv with the newest stack and TensorFlow (Keras), e.g. the
# README's install on Python 3.12 (jax 0.12.1). OLD_PYTHON: a venv with the
# older stack and PyTorch, e.g. Python 3.11 (jax 0.10.2) with
# `pip install torch==2.13.0` (a CPU wheel). Each round runs, one after
# another: NEW flax + keras, then OLD flax + torch_flush + torch, on RNN-64 and
# LSTM-64 (128 timed steps). Every JSON line names the versions.
set -euo pipefail
new="$1"; old="$2"; out="$3"; rounds="${4:-3}"
cd "$(dirname "$0")/.."
: > "$out"
for round in $(seq "$rounds"); do
  echo "round $round/$rounds" >&2
  rm -f "$out.part"
  "$new" benchmarks/benchmark.py --configs rnn64,lstm64 --steps 128 \
    --frameworks flax,keras --out "$out.part" >&2
  cat "$out.part" >> "$out"
  rm -f "$out.part"
  "$old" benchmarks/benchmark.py --configs rnn64,lstm64 --steps 128 \
    --frameworks flax,torch_flush,torch --out "$out.part" >&2
  cat "$out.part" >> "$out"
done
rm -f "$out.part"
