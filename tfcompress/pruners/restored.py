"""Pruning undone by a weight restore: what the pruning callbacks left in a model, and a
check that the model still holds it.

Masks are model weights, so a callback that restores weights from an earlier epoch
(`keras.callbacks.EarlyStopping(restore_best_weights=True)`, a reload of
`ModelCheckpoint(save_best_only=True)`) brings back the masks of that epoch, often one
before pruning, and the schedule, already past, does not prune again. The pruning
callbacks `remember` what each event left; `warn_if_restored` (their `on_train_end`, and
`tfcompress.strip`) names the masks that keep more than that.
"""

import weakref

from absl import logging

from tfcompress.pruners.stats import mask_stats

# model -> (its `mask_stats` after the event, the event's step). Keyed by the model object
# itself (weakly), never by id(): a freed model's id is reused.
_LEFT = weakref.WeakKeyDictionary()


def remember(model, step):
    """Records what the pruning event at `step` left in `model`; returns it (its
    `mask_stats`, read once for the callback's own record too)."""
    stats = mask_stats(model)
    _LEFT[model] = (stats, int(step))
    return stats


def last_event_step(model):
    """The step of the last pruning event `remember`ed for `model` in this process, or
    None (no event, or one applied by an earlier process and restored with the masks)."""
    left = _LEFT.get(model)
    return None if left is None else left[1]


def restored_masks(model):
    """`{statistic: (when remembered, now)}` of the masks that keep more than the last
    `remember`ed event left: `kept_channels/<mask>` grown, `weight_sparsity/<layer>`
    shrunk (empty when nothing was remembered)."""
    left = _LEFT.get(model)
    if left is None:
        return {}
    now = mask_stats(model)
    grown = {}
    for key, before in left[0].items():
        after = now.get(key, before)
        if (key.startswith("kept_channels/") and after > before) or (
            key.startswith("weight_sparsity/") and after < before
        ):
            grown[key] = (before, after)
    return grown


def warn_if_restored(model):
    """Logs a warning naming the masks of `model` that keep more than the pruning
    callbacks' last event left them (weights restored from before it); returns them
    (`restored_masks`)."""
    grown = restored_masks(model)
    if grown:
        _, step = _LEFT[model]
        shown = ", ".join(
            f"{key}: {a:.4g} -> {b:.4g}" for key, (a, b) in sorted(grown.items())[:5]
        )
        logging.warning(
            "Model '%s': %d mask layer(s) keep more than pruning left them at its last "
            "event (step %d): %s%s. Its weights were restored from before that event "
            "(EarlyStopping(restore_best_weights=True), or a reload of "
            "ModelCheckpoint(save_best_only=True)), and the pruned channels or weights "
            "are back; strip keeps them. Let the restoring callback watch only epochs "
            "after the schedule's last event (EarlyStopping(start_from_epoch=...)), or "
            "restore in a second fit of the pruned model.",
            model.name, len(grown), step, shown, " ..." if len(grown) > 5 else "",
        )
    return grown
