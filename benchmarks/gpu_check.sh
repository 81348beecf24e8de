#!/usr/bin/env bash
# One device call on a lent GPU (see ../shared/device/README.md), sized for a
# 15-minute window with margin: at most ~8.5 minutes of work (a device call
# may run 10), after a machine start of ~1 minute:
#   1. the Pallas kernel tests natively (T = 64 and 1024);
#   2. the six-config benchmark: flax (XLA loop), flax_pallas, PyTorch cuDNN;
#   3. one 5-epoch LSTM-512 run per implementation (hoisted, pallas).
# Logs go to $OUT (default gpu_out/); each part has its own timeout, so a
# hang in one still leaves the others' logs.
#   bash ../shared/device/prepare.sh --data      # here, once: .whl/ and .imdb/
#   device call: carry [".whl", ".imdb"], command: bash benchmarks/gpu_check.sh
set -u
OUT=${OUT:-gpu_out}
mkdir -p "$OUT"
python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .whl/*.whl
export PYTHONPATH=/tmp/site:$PWD TFDS_DATA_DIR=$PWD/.imdb FLAX_SENTIMENT_CACHE=/tmp/fscache
nvidia-smi -L > "$OUT/nvidia.txt" 2>&1
python3 -c "import jax, flax, optax, torch; print('jax', jax.__version__, 'flax', flax.__version__, 'torch', torch.__version__, jax.devices(), [getattr(d, 'compute_capability', None) for d in jax.devices()])" \
  > "$OUT/versions.txt" 2>&1
start=$SECONDS
for length in ${KERNEL_LENGTHS-64 1024}; do
  FLAX_SENTIMENT_KERNEL_TEST_LENGTH=$length timeout "${KERNEL_TEST_S:-60}" \
    python3 -m pytest -q -p no:cacheprovider tests/test_pallas_recurrence.py \
    > "$OUT/pytest_kernels_T$length.txt" 2>&1
  echo "pytest rc=$? ${SECONDS}s" >> "$OUT/pytest_kernels_T$length.txt"
done
timeout "${BENCH_S:-150}" python3 benchmarks/benchmark.py \
  --frameworks "${FRAMEWORKS:-flax,flax_pallas,torch}" --steps 64 \
  --out "$OUT/benchmark.jsonl" > "$OUT/benchmark.txt" 2>&1
echo "benchmark rc=$? ${SECONDS}s" >> "$OUT/benchmark.txt"
for implementation in ${IMPLEMENTATIONS-hoisted pallas}; do
  timeout "${RUN_S:-120}" python3 run.py --config configs/lstm.py \
    --config.seq_len=512 --config.implementation=$implementation \
    --config.progress=False --workdir "$OUT/lstm512_$implementation" \
    > "$OUT/run_$implementation.txt" 2>&1
  echo "run rc=$? ${SECONDS}s" >> "$OUT/run_$implementation.txt"
  rm -rf "$OUT/lstm512_$implementation/checkpoints" \
    "$OUT/lstm512_$implementation/best_checkpoint"
done
if [ -n "${TESTS:-}" ]; then  # more of the suite, if asked (and time is left)
  timeout "${TEST_S:-60}" python3 -m pytest -q -x -p no:cacheprovider $TESTS \
    > "$OUT/pytest_gpu.txt" 2>&1
  echo "pytest rc=$? ${SECONDS}s" >> "$OUT/pytest_gpu.txt"
fi
echo "total $((SECONDS - start))s"
