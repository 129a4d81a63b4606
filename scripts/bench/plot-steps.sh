#!/usr/bin/env bash
# Plots a scale benchmark of several steps per tool (not a test; backup-snap.sh uses it,
# plot.sh draws the other tools' TSVs of one metric a row): wall time and peak RSS
# against size, one line per tool and step, both axes logarithmic, as a PNG (gnuplot,
# Debian's gnuplot-nox).
#
#   scripts/bench/plot-steps.sh DATA.tsv OUT.png [TITLE [XLABEL]]
#
# DATA.tsv has a header line, then rows of: size, tool, step, seconds, rss_kib
# (tab-separated). The first tool in the file is drawn with solid lines, the others
# dashed; each step has its own colour.
set -euo pipefail
tsv=${1:?usage: plot-steps.sh DATA.tsv OUT.png [TITLE]}
png=${2:?usage: plot-steps.sh DATA.tsv OUT.png [TITLE]}
title=${3:-}
xlabel=${4:-size}
command -v gnuplot >/dev/null || { echo "plot-steps.sh: needs gnuplot (apt-get install gnuplot-nox)" >&2; exit 69; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
# One file per tool and step, sorted by size, for gnuplot to draw as one line.
tools=$(awk -F'\t' 'NR > 1 && !seen[$2]++ { print $2 }' "$tsv")
steps=$(awk -F'\t' 'NR > 1 && !seen[$3]++ { print $3 }' "$tsv")
plot_time= plot_rss=
ti=0
for t in $tools; do
  si=0
  for s in $steps; do
    f=$tmp/$ti-$si.dat
    awk -F'\t' -v t="$t" -v s="$s" 'NR > 1 && $2 == t && $3 == s { print $1, $4, $5 / 1024 }' "$tsv" | sort -n >"$f"
    if [ -s "$f" ]; then
      style="with linespoints lw 2 pt $((ti + 6)) dt $((ti + 1)) lc $((si + 1)) title '$t $s'"
      plot_time+="${plot_time:+, }'$f' using 1:2 $style"
      plot_rss+="${plot_rss:+, }'$f' using 1:3 $style"
    fi
    si=$((si + 1))
  done
  ti=$((ti + 1))
done
gnuplot <<GP
set terminal pngcairo size 1200,600 font ",10"
set output '$png'
set multiplot layout 1,2 title "$title"
set logscale xy
set grid
set key below maxrows 3 font ",8"
set format x "%.0s%c"
set xlabel '$xlabel'
set ylabel 'wall time, s'
plot $plot_time
set ylabel 'peak RSS, MiB'
plot $plot_rss
unset multiplot
GP
