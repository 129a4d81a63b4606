#!/usr/bin/env bash
# Plots a scale-mode TSV (rows of size, tool, metric, value; `#` lines are comments) as
# one PNG: a panel per metric, a line per tool, the size on a logarithmic x axis (and
# the value too where a panel spans more than two decades).
# Needs gnuplot (Debian gnuplot-nox). Not a test.
#
#   scripts/bench/plot.sh TSV PNG [TITLE]
set -euo pipefail
[ $# -ge 2 ] || { echo "usage: plot.sh TSV PNG [TITLE]" >&2; exit 64; }
tsv=$1 png=$2 title=${3:-$(basename "$tsv" .tsv)}
command -v gnuplot >/dev/null || { echo "plot.sh: gnuplot is not installed: apt-get install gnuplot-nox, then plot.sh $tsv $png again (the TSV is kept)" >&2; exit 69; }
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
xs = sorted({x for r in rows.values() for x, _ in r})
print(f"set logscale x; set xrange [{xs[0] / 1.5}:{xs[-1] * 1.5}]; set xtics ({', '.join(f'{x:g}' for x in xs)})")
print("set grid; set key top left opaque box; set xlabel 'size'")
for metric in metrics:
    blocks = [t for t in tools if (metric, t) in rows]
    for i, t in enumerate(blocks):
        print(f"$d{i} << EOD")
        for x, y in sorted(rows[(metric, t)]):
            print(x, y)
        print("EOD")
    ys = [y for t in blocks for _, y in rows[(metric, t)]]
    # Values over more than two decades (a peer 50 times slower) on a log axis too.
    if min(ys) > 0 and max(ys) / min(ys) > 100:
        print("set logscale y; set yrange [*:*]")
    else:
        print("unset logscale y; set yrange [0:*]")
    print(f"set title {q(metric)}; set ylabel {q(metric)}")
    print("plot " + ", ".join(f"$d{i} using 1:2 with linespoints lw 2 title {q(t)}" for i, t in enumerate(blocks)))
print("unset multiplot")
PY
echo "$png"
