"""Scratch: co-training. The seed's BiLSTM (+ n-grams) labels the unlabeled reviews; the n-gram
model is refitted on train + those; ensembles re-chosen on validation."""
import sys, time, numpy as np, scipy.sparse as sp
from sklearn import feature_extraction, linear_model
from flax_sentiment import api, ensemble, ngrams, predict, text_models
t0 = time.time()
lstm_dir, pv_dir = sys.argv[1], sys.argv[2]
sig = lambda z: 1 / (1 + np.exp(-z))
config = api.load_config("ngrams"); config.vocabulary_splits = "train+unsupervised"
splits = text_models.split_texts(config)
unl = splits["unsupervised"][0]
pl = {s: ensemble.split_probabilities(lstm_dir, s)[0] for s in ("validation", "test")}
pp = {s: ensemble.split_probabilities(pv_dir, s)[0] for s in ("validation", "test")}
predictor = predict.load_predictor(lstm_dir)
pl_unl = np.concatenate([predictor([t.decode() for t in unl[i:i + 2000]]) for i in range(0, len(unl), 2000)])
np.save("/tmp/scratch/lstm_unl_p.npy", pl_unl)
print("scored unlabeled", time.time() - t0, flush=True)
vec = feature_extraction.text.CountVectorizer(analyzer=lambda t: ngrams.text_ngrams(t, 3), binary=True, min_df=2, dtype=np.float32)
(tr_t, tr_y), (va_t, va_y), (te_t, te_y) = splits["train"], splits["validation"], splits["test"]
Xtr = vec.fit_transform(tr_t).tocsr(); Xva, Xte, Xun = (vec.transform(x).tocsr() for x in (va_t, te_t, unl))
def fitlr(X, y, C=3.0):
  r = ngrams.log_count_ratios(X, y)
  m = linear_model.LogisticRegression(C=C, solver="liblinear", dual=True, max_iter=1000).fit(X.multiply(r).tocsr(), y)
  return lambda Z: m.decision_function(Z.multiply(r).tocsr())
acc = lambda p, y: float(np.mean((p > 0.5) == (y > 0.5)))
base = fitlr(Xtr, tr_y)
pn = {"validation": sig(base(Xva)), "test": sig(base(Xte))}; pn_unl = sig(base(Xun))
def choose(members):  # grid on validation, 0.05 step
  P = np.stack([m["validation"] for m in members]); T = np.stack([m["test"] for m in members])
  grid = ensemble.simplex_grid(len(members), 0.05)
  w = grid[int(np.argmax([acc(g @ P, va_y) for g in grid]))]
  return w, acc(w @ P, va_y), acc(w @ T, te_y)
print("lstm val %.4f test %.4f" % (acc(pl["validation"], va_y), acc(pl["test"], te_y)))
print("ngrams val %.4f test %.4f" % (acc(pn["validation"], va_y), acc(pn["test"], te_y)))
print("lstm+ngrams", choose([pl, pn])); print("lstm+ngrams+pv", choose([pl, pn, pp])); print("ngrams+pv", choose([pn, pp]), flush=True)
w, _, _ = choose([pl, pn])
for teacher_name, t_unl in (("lstm", pl_unl), ("lstm+ngrams", w[0] * pl_unl + w[1] * pn_unl)):
  for thr in (0.0, 0.3, 0.4):
    keep = np.abs(t_unl - 0.5) > thr
    f = fitlr(sp.vstack([Xtr, Xun[keep]]).tocsr(), np.concatenate([tr_y, (t_unl[keep] > 0.5).astype(int)]))
    pn2 = {"validation": sig(f(Xva)), "test": sig(f(Xte))}
    print(f"teacher {teacher_name} thr {thr} kept {keep.sum()}: ngrams2 val %.4f test %.4f" % (acc(pn2["validation"], va_y), acc(pn2["test"], te_y)),
          "| lstm+ngrams2", choose([pl, pn2]), "| lstm+ngrams2+pv", choose([pl, pn2, pp]), "| lstm+ngrams+ngrams2", choose([pl, pn, pn2]), flush=True)
print("total", time.time() - t0)
