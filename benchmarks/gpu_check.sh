#!/usr/bin/env bash
# One device call on a lent GPU (see ../shared/device/README.md), sized for a
# 15-minute window: at most ~9 minutes of work (a device call may run 10),
# after a machine start of ~1 minute:
#   1. the Pallas kernel tests natively (T = 64, then the equivalence tests
#      again at T = 1024);
#   2. ptxas register use and spills of the LSTM and SimpleRNN kernels;
#   3. the six-config benchmark: flax (the default, implementation=auto),
#      flax_hoisted (the XLA loop), PyTorch cuDNN;
#   4. the kernels alone, us per step, with and without the TMA prefetch
#      (benchmarks/kernel_timing.py; KERNEL_TIMING= skips it);
#   5. optionally (CPU_CONFIGS=lstm64,...) CPU rows on the host pinned to
#      CPU_CORES (default 0,1), CPU_ROUNDS times: another machine kind;
#   6. 5-epoch LSTM-512 runs, one per implementation in $IMPLEMENTATIONS
#      (default: auto, which is pallas on a Hopper GPU).
# pytest runs with -n 0: the suite's pytest-xdist workers would each take
# most of the GPU's memory (seen: cuBLAS handles failing to allocate).
# Environment variables narrow each part (KERNEL_LENGTHS, PTXAS_CONFIGS,
# CONFIGS, FRAMEWORKS, KERNEL_TIMING_ARGS, CPU_*, IMPLEMENTATIONS, RUN_ARGS;
# *_S: timeouts).
# At most 7 files under $OUT (a device call returns 8: with all parts on,
# set IMPLEMENTATIONS= to stay within); each part has its own
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
    python3 -m pytest -q -n 0 -p no:cacheprovider tests/test_pallas_recurrence.py \
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
# The kernels alone, us per step, with and without the TMA prefetch.
if [ -n "${KERNEL_TIMING-yes}" ]; then
  timeout "${KERNEL_TIMING_S:-150}" python3 benchmarks/kernel_timing.py \
    ${KERNEL_TIMING_ARGS:-} > "$OUT/kernel_timing.jsonl" 2>&1
  echo "kernel_timing rc=$? ${SECONDS}s" >> "$OUT/kernel_timing.jsonl"
fi
# The host's CPU as another machine kind (issue #19): CPU rows pinned to
# $CPU_CORES (default two, as the 2-core VMs), one thread per core.
if [ -n "${CPU_CONFIGS:-}" ]; then
  cores=${CPU_CORES:-0,1}; n=$(( $(echo "$cores" | tr -cd , | wc -c) + 1 ))
  for round in $(seq "${CPU_ROUNDS:-1}"); do
    JAX_PLATFORMS=cpu CUDA_VISIBLE_DEVICES= OMP_NUM_THREADS=$n \
      timeout "${CPU_BENCH_S:-150}" taskset -c "$cores" python3 \
      benchmarks/benchmark.py --configs "$CPU_CONFIGS" \
      --frameworks "${CPU_FRAMEWORKS:-flax,torch_flush,torch}" --steps 128 \
      --out "$OUT/cpu_benchmark.jsonl" >> "$OUT/benchmark.txt" 2>&1
    echo "cpu benchmark round $round rc=$? ${SECONDS}s" >> "$OUT/benchmark.txt"
  done
fi
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
  timeout "${TEST_S:-60}" python3 -m pytest -q -x -n 0 -p no:cacheprovider $TESTS \
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
[ -f "$OUT/kernel_timing.jsonl" ] && python3 - "$OUT/kernel_timing.jsonl" <<'PY'
import json, sys
for line in open(sys.argv[1]):
  if line.startswith("{"):
    r = json.loads(line)
    print(f"kernel {r['cell']:<5}T={r['length']:<5}masked={r['masked']!s:<6}"
          f"prefetch={r['prefetch']!s:<6}forward {r['forward_us_per_step']:6.2f}"
          f" (no residuals {r['forward_no_residuals_us_per_step']:6.2f})"
          f" us/step, backward {r['backward_us_per_step']:6.2f} us/step")
  else:
    print(line.rstrip())
PY
grep -E "^(lstm|rnn|gru)[0-9]+ |round" "$OUT/benchmark.txt" | tail -30
for f in "$OUT"/run_*.txt; do echo "--- $f"; grep -v '^{' "$f" | tail -12; done
