#!/usr/bin/env bash
# Plots a scale-mode TSV (rows of size, tool, metric, value; `#` lines are comments) as
# one PNG: a panel per metric, a line per tool, the size on a logarithmic x axis.
# Needs gnuplot (Debian gnuplot-nox). Not a test.
#
#   scripts/bench/plot.sh TSV PNG [TITLE]
set -euo pipefail
[ $# -ge 2 ] || { echo "usage: plot.sh TSV PNG [TITLE]" >&2; exit 64; }
tsv=$1 png=$2 title=${3:-$(basename "$tsv" .tsv)}
command -v gnuplot >/dev/null || { echo "plot.sh: needs gnuplot (Debian gnuplot-nox)" >&2; exit 69; }
[ -s "$tsv" ] || { echo "plot.sh: $tsv is empty or missing: run a bench script with --scale first" >&2; exit 66; }

# The gnuplot script, data inline: one block per (metric, tool), in the order first seen.
python3 - "$tsv" "$png" "$title" <<'PY' | gnuplot
import sys
tsv, png, title = sys.argv[1:4]
rows, metrics, tools = {}, [], []
for line in open(tsv):
    if not line.strip() or line.startswith("#"):
        continue
    size, tool, metric, value = line.rstrip("\n").split("\t")
    metrics += [metric] if metric not in metrics else []
    tools += [tool] if tool not in tools else []
    rows.setdefault((metric, tool), []).append((float(size), float(value)))
q = lambda s: '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'
n = len(metrics)
cols = 1 if n == 1 else 2
lines = (n + cols - 1) // cols
print(f"set terminal pngcairo size {560 * cols},{380 * lines} font ',10' noenhanced")
print(f"set output {q(png)}")
print(f"set multiplot layout {lines},{cols} title {q(title)}")
print("set logscale x; set grid; set key top left opaque box; set xlabel 'size'; set yrange [0:*]")
for metric in metrics:
    blocks = [t for t in tools if (metric, t) in rows]
    for i, t in enumerate(blocks):
        print(f"$d{i} << EOD")
        for x, y in sorted(rows[(metric, t)]):
            print(x, y)
        print("EOD")
    print(f"set title {q(metric)}; set ylabel {q(metric)}")
    print("plot " + ", ".join(f"$d{i} using 1:2 with linespoints lw 2 title {q(t)}" for i, t in enumerate(blocks)))
print("unset multiplot")
PY
echo "$png"
