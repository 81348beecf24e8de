#!/usr/bin/env bash
# One device call on a lent GPU (see ../shared/device/README.md): the suite's
# in-process tests on the GPU, the benchmark's GPU rows (flax per
# implementation and precision, PyTorch cuDNN, one run) and LSTM-512 float32
# vs bfloat16 real 5-epoch runs. Logs go to $OUT (default gpu_out/).
#   bash ../shared/device/prepare.sh --data      # here, once: .whl/ and .imdb/
#   device call: carry [".whl", ".imdb"], command: bash benchmarks/gpu_check.sh
set -u
OUT=${OUT:-gpu_out}
mkdir -p "$OUT"
python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .whl/*.whl
export PYTHONPATH=/tmp/site:$PWD TFDS_DATA_DIR=$PWD/.imdb FLAX_SENTIMENT_CACHE=/tmp/fscache
nvidia-smi -L > "$OUT/nvidia.txt" 2>&1
python3 -c "import jax, flax, optax, torch; print('jax', jax.__version__, 'flax', flax.__version__, 'torch', torch.__version__, jax.devices())" \
  > "$OUT/versions.txt" 2>&1
start=$SECONDS
timeout "${BENCH_S:-180}" python3 benchmarks/benchmark.py \
  --frameworks "${FRAMEWORKS:-flax,flax_unroll1,flax_bf16,torch}" --steps 64 \
  --out "$OUT/benchmark.jsonl" > "$OUT/benchmark.txt" 2>&1
echo "benchmark rc=$? ${SECONDS}s" >> "$OUT/benchmark.txt"
timeout "${TEST_S:-100}" python3 -m pytest -q -p no:cacheprovider \
  ${TESTS:-tests/test_recurrence.py tests/test_models.py tests/test_model_options.py} \
  > "$OUT/pytest_gpu.txt" 2>&1
echo "pytest rc=$? ${SECONDS}s" >> "$OUT/pytest_gpu.txt"
for dtype in ${DTYPES-float32 bfloat16}; do
  timeout "${RUN_S:-125}" python3 run.py --config configs/lstm.py \
    --config.seq_len=512 --config.dtype=$dtype --config.progress=False \
    --workdir "$OUT/lstm512_$dtype" > "$OUT/run_$dtype.txt" 2>&1
  echo "run rc=$? ${SECONDS}s" >> "$OUT/run_$dtype.txt"
  rm -rf "$OUT/lstm512_$dtype/checkpoints" "$OUT/lstm512_$dtype/best_checkpoint"
done
echo "total $((SECONDS - start))s"
