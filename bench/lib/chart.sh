#!/usr/bin/env bash
# Draws a benchmark's result as a PNG bar chart beside its markdown table (issue 14: pictures
# where people would rather look), with gnuplot (gnuplot-nox, from appliance/install-deps.sh).
#
#   bench/lib/chart.sh RESULT.md TITLE Y-LABEL LABEL-COLUMNS VALUE-COLUMNS
#
# Reads the first table of RESULT.md; LABEL-COLUMNS and VALUE-COLUMNS are header names joined
# by commas ("pair,offloads" and "p50 µs,p99 µs"). One group of bars per row, labelled by its
# label columns, one bar per value column; a cell that is not a number (empty, "failed") is a
# gap, never a zero. Writes RESULT.png (the same name, .png) and prints its path. The bench
# scripts call it after writing their table; it can redraw any recorded result.
set -euo pipefail

[ $# -eq 5 ] || { echo "usage: $0 RESULT.md TITLE Y-LABEL LABEL-COLUMNS VALUE-COLUMNS" >&2; exit 2; }
result=$1 title=$2 ylabel=$3 labels=$4 values=$5
[ -r "$result" ] || { echo "chart: cannot read $result" >&2; exit 1; }
command -v gnuplot >/dev/null || { echo "chart: gnuplot is not installed (appliance/install-deps.sh installs gnuplot-nox)" >&2; exit 1; }
png=${result%.md}.png
data=$(mktemp)
trap 'rm -f "$data"' EXIT

# The first markdown table as tab-separated columns: a header line, then one line per row.
awk -v labels="$labels" -v values="$values" '
    function trim(s) { gsub(/^[ \t]+|[ \t]+$/, "", s); return s }
    function cells(line, out,    n, i, parts) {
        n = split(line, parts, "|")
        for (i = 2; i < n; i++) out[i - 1] = trim(parts[i])
        return n - 2
    }
    BEGIN { nl = split(labels, L, ","); nv = split(values, V, ","); state = 0 }
    /^\|/ {
        if (state == 0) {
            n = cells($0, head)
            for (i = 1; i <= n; i++) column[head[i]] = i
            for (i = 1; i <= nl; i++) if (!(L[i] in column)) { print "chart: no column \"" L[i] "\"" > "/dev/stderr"; exit 1 }
            for (i = 1; i <= nv; i++) if (!(V[i] in column)) { print "chart: no column \"" V[i] "\"" > "/dev/stderr"; exit 1 }
            line = "row"
            for (i = 1; i <= nv; i++) line = line "\t" V[i]
            print line
            state = 1
            next
        }
        if (state == 1) { state = 2; next }  # the |---| line
        cells($0, row)
        label = ""
        for (i = 1; i <= nl; i++) label = label (i > 1 ? " " : "") row[column[L[i]]]
        line = label
        for (i = 1; i <= nv; i++) {
            v = row[column[V[i]]]
            line = line "\t" (v ~ /^-?[0-9]+(\.[0-9]+)?$/ ? v : "-")
        }
        print line
        rows++
        next
    }
    state == 2 { exit }
    END { if (state == 0) { print "chart: no table in the file" > "/dev/stderr"; exit 1 } }
' "$result" >"$data"

rows=$(($(wc -l <"$data") - 1))
width=$((rows * 60 + 300))
[ "$width" -ge 800 ] || width=800
nvalues=$(awk -F'\t' 'NR == 1 { print NF - 1 }' "$data")
# Bars start at zero; below it only when a figure is negative (reconfig: seen before vtep-ctl
# returned).
negative=$(awk -F'\t' 'NR > 1 { for (i = 2; i <= NF; i++) if ($i != "-" && $i < 0) n = 1 } END { print n + 0 }' "$data")
yrange="[0:*]"
# Labels stand upright under their bars; the picture grows downward to hold the longest.
longest=$(awk -F'\t' 'NR > 1 && length($1) > n { n = length($1) } END { print n + 0 }' "$data")
height=$((420 + longest * 7))
[ "$negative" -eq 0 ] || yrange="[*:*]"
plot=""
for ((i = 2; i <= nvalues + 1; i++)); do
    if [ $i -eq 2 ]; then
        plot="'$data' using $i:xtic(1) title columnheader($i)"
    else
        plot="$plot, '' using $i title columnheader($i)"
    fi
done
gnuplot <<GNUPLOT
set terminal pngcairo size $width,$height font "sans,10"
set output "$png"
set title "$(printf '%s' "$title" | sed 's/"/\\"/g')"
set ylabel "$(printf '%s' "$ylabel" | sed 's/"/\\"/g')"
set datafile separator "\t"
set datafile missing "-"
set style data histograms
set style histogram clustered gap 1
set style fill solid 0.85 border -1
set boxwidth 0.9
set grid ytics
set xzeroaxis
set yrange $yrange
set key outside top center horizontal
set xtics rotate by 90 right nomirror
plot $plot
GNUPLOT
echo "$png"
