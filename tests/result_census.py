"""Every result file of a results folder, read and validated: `python -m tests.result_census [RESULTS]`.

Prints how many result files there are (per top-level area), which code hashes, dirty flags and protocol digests
they carry, how many are edited or unreadable, the folder's size on disk and the mean and largest file size. A
regeneration's closing note quotes it: one code hash and one protocol hash over every committed result file.
Exits 1 when the files carry more than one code hash or protocol digest, or any is unreadable or edited.
"""
import sys
from collections import Counter
from pathlib import Path

from dba_cli.results.reading import read_result


def census(results: Path) -> tuple[list[str], bool]:
    areas, codes, protocols, dirty = Counter(), Counter(), Counter(), Counter()
    unreadable, edited, sizes = [], 0, []
    for path in sorted(results.rglob("*.json")):
        rel = path.relative_to(results)
        if rel.parts[0] == "smoke":
            continue
        try:
            document = read_result(path, inside=results)
        except ValueError as exc:
            unreadable.append(str(exc))
            continue
        if document is None:
            continue
        depth = 2 if rel.parts[0] in ("tune", "tune-holdout", "ablation", "protocol", "convergence") else 1
        areas["/".join(rel.parts[:depth])] += 1
        code = document.get("code") or {}
        codes[str(code.get("hash"))] += 1
        dirty[str(code.get("dirty"))] += 1
        protocols[str(document.get("protocol"))] += 1
        edited += bool(document.get("_edited"))
        sizes.append(path.stat().st_size)
    every_file = sum(f.stat().st_size for f in results.rglob("*") if f.is_file())
    lines = [f"{sum(areas.values()):,} result files under {results}:"]
    lines += [f"  {count:6,}  {area}" for area, count in sorted(areas.items())]
    lines += [f"code hashes: {dict(codes)}", f"dirty: {dict(dirty)}", f"protocol digests: {dict(protocols)}",
              f"edited: {edited}, unreadable: {len(unreadable)}", *[f"  {line}" for line in unreadable[:5]]]
    if sizes:
        lines.append(f"result files: {sum(sizes) / 1e6:.1f} MB, mean {sum(sizes) / len(sizes) / 1e3:.1f} KB, "
                     f"largest {max(sizes) / 1e3:.1f} KB; every file under {results}: {every_file / 1e6:.1f} MB (apparent size; du counts whole blocks)")
    clean = len(codes) == 1 and len(protocols) == 1 and not unreadable and not edited
    return lines, clean


if __name__ == "__main__":
    lines, clean = census(Path(sys.argv[1] if len(sys.argv) > 1 else "results"))
    print("\n".join(lines))
    sys.exit(0 if clean else 1)
