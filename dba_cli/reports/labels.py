"""What the training labels were, read from the result files: the realised label noise, and the rare classes' accuracy.

A run with label noise or class imbalance records its labels' hash, the
realised noise rate, the training images per class and, for imbalance, the
final test accuracy per class (training/train.py). Here they become the lines
and the table a recipe's section adds: the noise a table's numbers were made
under, and, for a long-tailed subset, each method's accuracy on the three
classes with the fewest training images (the test set is balanced, so the
overall accuracy hides them).
"""

from __future__ import annotations

import statistics

from .markdown import markdown_table
from .summaries import MethodSummary

RAREST = 3  # the tables' "rarest classes": the three with the fewest training images


def rarest_classes(class_counts: list[int], k: int = RAREST) -> list[int]:
    """The k classes with the fewest training images (on a tie, the higher class first), in class order."""
    return sorted(sorted(range(len(class_counts)), key=lambda c: (class_counts[c], -c))[:k])


def rarest_accuracy(document: dict, k: int = RAREST) -> float | None:
    """A run's mean final test accuracy over its k rarest training classes; None where it recorded none."""
    accuracy, counts = document.get("final_class_accuracy"), document.get("class_counts")
    if not accuracy or not counts:
        return None
    return statistics.fmean(accuracy[c] for c in rarest_classes(counts, k))


def labels_line(summaries: list[MethodSummary]) -> list[str]:
    """One line on the training labels, where the runs had noise or imbalance: the realised rate and the class counts."""
    documents = [d for s in summaries for d in s.documents if d.get("class_counts") is not None]
    if not documents:
        return []
    config = documents[0]["config"]
    parts = []
    if config.get("label_noise", "none") != "none":
        realised = [d["label_noise_realised"] for d in documents]
        parts.append(f"{config['label_noise']} label noise at rate {config['noise_rate']:g} on the training subset only "
                     f"(realised {100 * min(realised):.1f}–{100 * max(realised):.1f}% of training labels over "
                     f"{len(documents)} runs; the test labels are clean)")
    if config.get("imbalance", 1.0) != 1.0:
        parts.append(f"a long-tailed subset, imbalance ratio {config['imbalance']:g} (training images per class "
                     f"{', '.join(map(str, documents[0]['class_counts']))}; the test set is balanced)")
    return ["Training labels: " + "; ".join(parts) + "."] if parts else []


def rarest_section(summaries: list[MethodSummary]) -> list[str]:
    """For a long-tailed subset, each method's accuracy on its rarest classes, beside its overall accuracy."""
    rows = []
    for s in summaries:
        values = [v for d in s.documents if (v := rarest_accuracy(d)) is not None]
        if not values:
            continue
        spread = f" ± {statistics.stdev(values):.2f}" if len(values) > 1 else ""
        classes = rarest_classes(next(d["class_counts"] for d in s.documents if d.get("class_counts")))
        rows.append([s.method_name, str(len(values)), f"{statistics.fmean(values):.2f}{spread}", f"{s.mean:.2f}",
                     ", ".join(map(str, classes))])
    if not rows:
        return []
    return ["", f"Accuracy on the {RAREST} rarest classes (the fewest training images), final test accuracy, mean ± std over seeds:",
            "", markdown_table(["method", "n", f"rarest {RAREST} classes %", "all classes %", "classes"], rows, "lrrrl")]
