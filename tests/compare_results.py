"""Two results folders compared file by file (e.g. the committed results against a regeneration): `python -m tests.compare_results OLD NEW`.

Prints, per recipe folder (or group), how many files share path and config, how many have identical final test
accuracy, identical training-loss history and identical evaluated accuracies, and lists any that differ.
"""
import sys
from collections import defaultdict
from pathlib import Path

from dba_cli.files import load_json
from dba_cli.results.format import history_columns

LIMIT = 4 * 2**20  # bytes: a result file is about 10 KB

old, new = Path(sys.argv[1]), Path(sys.argv[2])
rows = defaultdict(lambda: defaultdict(int))
differ = []
for path in sorted(old.rglob("seed-*.json")) + sorted(old.glob("foundation/*.json")):
    rel = path.relative_to(old)
    area = rel.parts[0] if rel.parts[0] not in ("tune", "ablation", "protocol", "convergence") else "/".join(rel.parts[:2])
    other = new / rel
    a = load_json(path, LIMIT, inside=old)
    if not other.exists():
        rows[area]["not regenerated (path gone)"] += 1
        continue
    b = load_json(other, LIMIT, inside=new)
    if a.get("config") != b.get("config"):
        rows[area]["config changed"] += 1
        continue
    rows[area]["same path and config"] += 1
    same_acc = a["final_test_accuracy"] == b["final_test_accuracy"]
    columns = lambda h: h if isinstance(h, dict) else history_columns(h)  # noqa: E731
    ha, hb = columns(a["history"]), columns(b["history"])
    same_loss = ha["train_loss"] == hb["train_loss"]
    untimed = lambda e: {k: v for k, v in (e or {}).items() if not k.endswith("seconds")}  # noqa: E731
    same_eval = untimed(ha.get("evaluated")) == untimed(hb.get("evaluated"))
    rows[area]["final accuracy identical"] += same_acc
    rows[area]["loss history identical"] += same_loss
    rows[area]["test (and validation) losses and accuracies identical"] += same_eval
    if not (same_acc and same_loss and same_eval):
        differ.append((str(rel), a["final_test_accuracy"], b["final_test_accuracy"],
                       max((abs(x - y) for x, y in zip(ha["train_loss"], hb["train_loss"])), default=0.0)))
columns = ["same path and config", "final accuracy identical", "loss history identical", "test (and validation) losses and accuracies identical",
           "config changed", "not regenerated (path gone)"]
print("| folder | " + " | ".join(columns) + " |")
print("|---|" + "---:|" * len(columns))
for area, counts in sorted(rows.items()):
    print(f"| {area} | " + " | ".join(str(counts[c]) for c in columns) + " |")
total = {c: sum(r[c] for r in rows.values()) for c in columns}
print("| **all** | " + " | ".join(str(total[c]) for c in columns) + " |")
print()
for rel, a, b, loss in differ:
    print(f"differs: {rel}: final accuracy {a} -> {b}; largest training-loss difference {loss:.3g}")
