"""A reward in TRL's convention: it would work unchanged in TRL's GRPOTrainer, and evolora uses it as is."""


def concise_caption(completions, max_words=4, **kwargs):
    """1.0 for a completion that ends its sentence within `max_words` words, 0.0 otherwise; None (no opinion)
    for an empty completion."""
    return [
        None
        if not c.split()
        else float(any(w.endswith((".", "!", "?")) for w in c.split()[:max_words]))
        for c in completions
    ]
