"""Score a PEFT adapter directory on STS-B dev pairs with stock transformers + peft only.

Run as a script in a fresh process: ``python score_adapter.py MODEL_DIR ADAPTER_DIR DEV_CSV N_PAIRS SEED``.
evolora's packages are blocked from import, to prove the adapter needs nothing of ours. The dev subset is
drawn as evolora documents it: PCG64(data seed), train draw first (size TRAIN_SUBSET of TRAIN_LEN), then dev.
"""

import csv
import sys

for name in ("evolora", "evolution", "fitness", "orchestrator"):
    sys.modules[name] = None  # type: ignore[assignment]  # any import of evolora now fails

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from peft import PeftModel  # noqa: E402
from scipy.stats import spearmanr  # noqa: E402
from transformers import AutoModel, AutoTokenizer  # noqa: E402


def main(model_dir, adapter_dir, dev_csv, idx_file):
    rows = list(csv.reader(open(dev_csv, encoding="utf-8"), delimiter="\t", quoting=csv.QUOTE_NONE))
    idx = np.load(idx_file)
    rows = [rows[i] for i in idx]
    gold = np.array([float(r[4]) for r in rows])
    tok = AutoTokenizer.from_pretrained(model_dir)
    model = PeftModel.from_pretrained(AutoModel.from_pretrained(model_dir), adapter_dir).eval()

    @torch.inference_mode()
    def embed(sents):
        enc = tok(sents, padding=True, truncation=True, max_length=128, return_tensors="pt")
        h = model(**enc).last_hidden_state
        m = enc["attention_mask"].unsqueeze(-1).float()
        return F.normalize((h * m).sum(1) / m.sum(1).clamp(min=1e-9), p=2, dim=1)

    cos = (embed([r[5] for r in rows]) * embed([r[6] for r in rows])).sum(1).double().numpy()
    print(repr(float(spearmanr(cos, gold).statistic)))


if __name__ == "__main__":
    main(*sys.argv[1:5])
