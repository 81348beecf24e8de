"""Peak memory of the text models' data stage (`common.split_texts`: the
reviews of train, validation and test as the n-gram model and paragraph
vectors read them) for a checkout, on a reviews CSV, empty cache:

  python benchmarks/text_data_memory.py CHECKOUT reviews_200000.csv

(the CSVs of benchmarks/data_scale.py). One JSON line.
"""
import json, resource, sys, threading, time, tempfile
sys.path.insert(0, sys.argv[1])
peak = [0]
def sample():
  while True:
    with open("/proc/self/status") as f:
      for line in f:
        if line.startswith("RssAnon:"):
          peak[0] = max(peak[0], int(line.split()[1]) * 1024)
    time.sleep(0.01)
threading.Thread(target=sample, daemon=True).start()
from flax_sentiment.configs import default
from flax_sentiment.text_models import common
config = default.get_config()
cache = tempfile.TemporaryDirectory()  # an empty cache, removed at exit
config.dataset = sys.argv[2]; config.cache_dir = cache.name; config.model = "ngrams"; config.tokenizer = "english"
start = time.perf_counter()
splits = common.split_texts(config)
n = sum(len(s[0]) for s in splits.values())
seconds = time.perf_counter() - start
cache.cleanup()
import flax_sentiment
print(json.dumps({"package": flax_sentiment.__file__, "seconds": round(seconds, 2), "reviews": n, "peak_anon_MB": peak[0] >> 20,
  "peak_rss_MB": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss >> 10}))
