#!/usr/bin/env bash
# One device call on a lent GPU (see ../shared/device/README.md), sized for a
# 15-minute window: at most ~9 minutes of work (a device call may run 10),
# after a machine start of ~1 minute:
#   1. the Pallas kernel tests natively (T = 64, then the equivalence tests
#      again at T = 1024);
#   2. ptxas register use and spills of the LSTM and SimpleRNN kernels;
#   3. the six-config benchmark: flax (the default, implementation=auto),
#      flax_hoisted (the XLA loop), PyTorch cuDNN;
#   4. 5-epoch LSTM-512 runs, one per implementation in $IMPLEMENTATIONS
#      (default: auto, which is pallas on a Hopper GPU).
# Environment variables narrow each part (KERNEL_LENGTHS, PTXAS_CONFIGS,
# CONFIGS, FRAMEWORKS, IMPLEMENTATIONS, RUN_ARGS; *_S: timeouts).
# At most 7 files under $OUT (a device call returns 8); each part has its own
# timeout, so a hang in one still leaves the others' logs, and a summary goes
# to stdout at the end.
#   bash ../shared/device/prepare.sh --data      # here, once: .whl/ and .imdb/
#   (plus tensorboardX: pip download ... -d .whl tensorboardX)
#   device call: carry [".whl", ".imdb"], command: bash benchmarks/gpu_check.sh
set -u
OUT=${OUT:-gpu_out}
mkdir -p "$OUT"
start=$SECONDS
python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .whl/*.whl
export PYTHONPATH=/tmp/site:$PWD TFDS_DATA_DIR=$PWD/.imdb \
  FLAX_SENTIMENT_CACHE=/tmp/fscache PYTHONUNBUFFERED=1
{ nvidia-smi -L
  python3 -c "import jax, flax, optax, torch; print('jax', jax.__version__, 'flax', flax.__version__, 'optax', optax.__version__, 'torch', torch.__version__, torch.backends.cudnn.version(), jax.devices(), [getattr(d, 'compute_capability', None) for d in jax.devices()])"
} > "$OUT/env.txt" 2>&1
kernels="$OUT/kernels.txt"
for length in ${KERNEL_LENGTHS-64 1024}; do
  select=(); [ "$length" != 64 ] && select=(-k "equal or rounding")
  echo "=== T = $length" >> "$kernels"
  FLAX_SENTIMENT_KERNEL_TEST_LENGTH=$length timeout "${KERNEL_TEST_S:-110}" \
    python3 -m pytest -q -p no:cacheprovider tests/test_pallas_recurrence.py \
    "${select[@]}" >> "$kernels" 2>&1
  echo "pytest rc=$? ${SECONDS}s" >> "$kernels"
done
# ptxas -v of the kernels a train step compiles (LSTM and SimpleRNN).
for config in ${PTXAS_CONFIGS-lstm64 rnn64}; do
  echo "=== $config" >> "$OUT/ptxas.txt"
  MOSAIC_GPU_DUMP_PTXAS=1 timeout "${PTXAS_S:-40}" python3 \
    benchmarks/benchmark.py --one "$config" flax_pallas --steps 1 \
    > /tmp/ptxas_$config.txt 2>&1
  echo "rc=$?" >> "$OUT/ptxas.txt"
  grep -i -E "ptxas|registers|spill|stack|smem|error" /tmp/ptxas_$config.txt \
    | head -c 20000 >> "$OUT/ptxas.txt"
  tail -3 /tmp/ptxas_$config.txt >> "$OUT/ptxas.txt"
done
timeout "${BENCH_S:-150}" python3 benchmarks/benchmark.py \
  --configs "${CONFIGS:-rnn64,rnn512,rnn1024,lstm64,lstm512,lstm1024}" \
  --frameworks "${FRAMEWORKS:-flax,flax_hoisted,torch}" --steps 64 \
  --out "$OUT/benchmark.jsonl" > "$OUT/benchmark.txt" 2>&1
echo "benchmark rc=$? ${SECONDS}s" >> "$OUT/benchmark.txt"
for implementation in ${IMPLEMENTATIONS-auto}; do
  log="$OUT/run_$implementation.txt"
  timeout "${RUN_S:-130}" python3 run.py --config configs/lstm.py \
    --config.seq_len=512 --config.implementation=$implementation \
    --config.progress=False --workdir "/tmp/lstm512_$implementation" ${RUN_ARGS:-} \
    > "$log" 2>&1
  echo "run rc=$? ${SECONDS}s" >> "$log"
  cat "/tmp/lstm512_$implementation/metrics.jsonl" >> "$log" 2>/dev/null
done
if [ -n "${TESTS:-}" ]; then  # more of the suite, if asked (and time is left)
  timeout "${TEST_S:-60}" python3 -m pytest -q -x -p no:cacheprovider $TESTS \
    > "$OUT/pytest_gpu.txt" 2>&1
  echo "pytest rc=$? ${SECONDS}s" >> "$OUT/pytest_gpu.txt"
fi
echo "=== summary (total $((SECONDS - start))s)"
cat "$OUT/env.txt"
grep -E "passed|failed|rc=|Error|error" "$kernels" | tail -20
grep -i -E "spill|Used [0-9]+ registers|rc=" "$OUT/ptxas.txt" | sort | uniq -c | head -20
python3 - "$OUT/benchmark.jsonl" <<'PY'
import json, sys
for line in open(sys.argv[1]):
  r = json.loads(line)
  print(f"{r['config']:<9}{r['framework']:<13}{r.get('implementation', ''):<8}",
        r.get("failed") or
        f"{r['compile_seconds']:6.1f} s compile {r['examples_per_second']:8.0f}"
        f" ex/s {r['epoch_seconds']:6.2f} s/epoch")
PY
tail -1 "$OUT/benchmark.txt"
for f in "$OUT"/run_*.txt; do echo "--- $f"; grep -v '^{' "$f" | tail -12; done
