"""A reward in TRL's convention: it would work unchanged in TRL's GRPOTrainer, and evolora uses it as is."""


def concise_caption(completions, max_words=4, **kwargs):
    """1.0 for a completion that ends its sentence within `max_words` words, 0.0 otherwise; None (no opinion)
    for an empty completion."""
    rewards = []
    for completion in completions:
        words = completion.split()
        if not words:
            rewards.append(None)
            continue
        ends = next((i for i, w in enumerate(words) if w.endswith((".", "!", "?"))), None)
        rewards.append(1.0 if ends is not None and ends < max_words else 0.0)
    return rewards
