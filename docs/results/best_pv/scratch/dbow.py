"""Scratch: paragraph vectors (gensim Doc2Vec DBOW + word n-grams) as a member."""
import time, numpy as np
from gensim.models.doc2vec import Doc2Vec, TaggedDocument
from sklearn import linear_model
from flax_sentiment import api, data, ngrams
t0 = time.time()
config = api.load_config("ngrams"); config.vocabulary_splits = "train+unsupervised"
splits = ngrams.split_texts(config); raw = data.read_raw(config)
tok = lambda ts: [[w.decode() if isinstance(w, bytes) else w for w in data.tokenize(t)] for t in ts]
tr, va, te, un = (tok(x) for x in (splits["train"][0], splits["validation"][0], splits["test"][0], raw["unsupervised"][0]))
docs = [TaggedDocument(w, [i]) for i, w in enumerate(tr + un)]
print("tokenized", time.time() - t0, flush=True)
m = Doc2Vec(vector_size=100, dm=0, window=10, min_count=2, sample=1e-4, negative=5, workers=2, epochs=10, seed=0)
m.build_vocab(docs); m.train(docs, total_examples=len(docs), epochs=m.epochs)
print("trained", time.time() - t0, flush=True)
Xtr = np.stack([m.dv[i] for i in range(len(tr))])
inf = lambda ds: np.stack([m.infer_vector(d, epochs=10) for d in ds])
Xva = inf(va); print("inferred val", time.time() - t0, flush=True)
Xte = inf(te); print("inferred test", time.time() - t0, flush=True)
ytr, yva, yte = splits["train"][1], splits["validation"][1], splits["test"][1]
# train vectors inferred too, so train and eval features come from the same procedure
Xtr_inf = inf(tr); print("inferred train", time.time() - t0, flush=True)
for name, X in (("trained-dv", Xtr), ("inferred", Xtr_inf)):
  for C in (0.1, 1.0):
    lr = linear_model.LogisticRegression(C=C, max_iter=2000).fit(X, ytr)
    zv, zt = lr.decision_function(Xva), lr.decision_function(Xte)
    print(name, C, "val %.4f test %.4f" % (np.mean((zv > 0) == yva), np.mean((zt > 0) == yte)), flush=True)
    np.save(f"/tmp/scratch/dbow_{name}_{C}_val.npy", zv); np.save(f"/tmp/scratch/dbow_{name}_{C}_test.npy", zt)
nv, nt = np.load("/tmp/scratch/ngram_val_logits.npy"), np.load("/tmp/scratch/ngram_test_logits.npy")
sig = lambda z: 1 / (1 + np.exp(-z))
for name in ("trained-dv", "inferred"):
  for C in (0.1, 1.0):
    zv, zt = np.load(f"/tmp/scratch/dbow_{name}_{C}_val.npy"), np.load(f"/tmp/scratch/dbow_{name}_{C}_test.npy")
    best = max(np.arange(0, 1.01, 0.05), key=lambda w: np.mean(((w * sig(zv) + (1 - w) * sig(nv)) > 0.5) == yva))
    print(name, C, "mix w=%.2f val %.4f test %.4f" % (best, np.mean(((best * sig(zv) + (1 - best) * sig(nv)) > 0.5) == yva), np.mean(((best * sig(zt) + (1 - best) * sig(nt)) > 0.5) == yte)), flush=True)
