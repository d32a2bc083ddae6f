"""An encoder pair metric: accuracy of telling paraphrases from non-paraphrases by cosine."""

import numpy as np


def paraphrase_accuracy(cosines, score, gold_threshold=3.0, **kwargs):
    """Pairs whose gold score is at least `gold_threshold` are paraphrases; the genome's cosines classify them
    at the threshold that labels as many pairs positive as the gold does. Returns the accuracy (a step function
    of the cosines: no gradient, just the decision)."""
    cosines, gold = np.asarray(cosines), np.asarray(score) >= gold_threshold
    k = int(gold.sum())
    if k in (0, len(gold)):
        return 1.0
    predicted = np.zeros(len(gold), dtype=bool)
    predicted[np.argsort(-cosines, kind="stable")[:k]] = True
    return float((predicted == gold).mean())
