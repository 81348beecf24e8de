"""Scratch: does the n-gram model gain from pseudo-labeled unlabeled reviews?"""
import sys, time, numpy as np
from sklearn import feature_extraction, linear_model
from flax_sentiment import api, data, ngrams
t0 = time.time()
config = api.load_config("ngrams")
config.vocabulary_splits = "train+unsupervised"
splits = ngrams.split_texts(config)
raw = data.read_raw(config)
unl = raw["unsupervised"][0]
print("read", time.time() - t0, len(unl), flush=True)
vec = feature_extraction.text.CountVectorizer(
    analyzer=lambda t: ngrams.text_ngrams(t, 3), binary=True, min_df=2, dtype=np.float32)
tr_t, tr_y = splits["train"]; va_t, va_y = splits["validation"]; te_t, te_y = splits["test"]
Xtr = vec.fit_transform(tr_t).tocsr()
Xva, Xte, Xun = (vec.transform(x).tocsr() for x in (va_t, te_t, unl))
print("vectorized", time.time() - t0, Xtr.shape, flush=True)
def fitlr(X, y, w=None, C=3.0):
  r = ngrams.log_count_ratios(X, (y > 0.5).astype(int))
  m = linear_model.LogisticRegression(C=C, solver="liblinear", dual=True, max_iter=1000)
  m.fit(X.multiply(r).tocsr(), (y > 0.5).astype(int), sample_weight=w)
  return lambda Z: m.decision_function(Z.multiply(r).tocsr())
acc = lambda z, y: float(np.mean((z > 0) == (y > 0.5)))
base = fitlr(Xtr, tr_y)
print("base val %.4f test %.4f" % (acc(base(Xva), va_y), acc(base(Xte), te_y)), flush=True)
np.save("/tmp/scratch/ngram_unl_logits.npy", base(Xun))
np.save("/tmp/scratch/ngram_val_logits.npy", base(Xva)); np.save("/tmp/scratch/ngram_test_logits.npy", base(Xte))
teacher = sys.argv[1] if len(sys.argv) > 1 else "self"
zu = base(Xun) if teacher == "self" else np.load(teacher)
import scipy.sparse as sp
for thr in (0.0, 1.0, 2.0):
  keep = np.abs(zu) > thr
  X = sp.vstack([Xtr, Xun[keep]]).tocsr(); y = np.concatenate([tr_y, (zu[keep] > 0).astype(int)])
  for C in (1.0, 3.0):
    f = fitlr(X, y, C=C)
    print(f"teacher={teacher} |z|>{thr} kept {keep.sum()} C={C}: val %.4f test %.4f" % (acc(f(Xva), va_y), acc(f(Xte), te_y)), flush=True)
print("total", time.time() - t0)
