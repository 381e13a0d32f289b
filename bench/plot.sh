#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# bench/plot.sh: PNG charts from load-generator JSON reports (gnuplot).
#
# Reads what the programs write and nothing else: the reports of
# bench/compare/run.sh --keep DIR (KIND-RUN.json for KIND in sealpost-durable,
# mosquitto, natsjs, sealpost, nats and RUN in lat, max, fanout, idle), any
# sealpost-loadgen --json reports, and a --hdr-log interval log. Needs the
# Debian packages gnuplot-nox (or gnuplot) and python3 (JSON).
set -euo pipefail

usage() {
	cat <<'USAGE'
usage: bench/plot.sh [--out DIR] [--compare DIR] [--hdr-log FILE] [--title TEXT] [REPORT.json ...]
Writes PNG charts into --out (default: the current directory):

  --compare DIR   the reports kept by bench/compare/run.sh --keep DIR:
                    compare-latency.png   p50 / p99 of the pairs latency run, per broker
                    compare-capacity.png  closed-loop capacity (envelopes/s), per broker
                    compare-memory.png    broker bytes per idle connection, per broker
  REPORT.json     sealpost-loadgen --json reports (label: the file name):
                    loadgen-percentiles.png  latency at p50 .. p99.9 and max, one line each
                    loadgen-throughput.png   delivered envelopes/s and broker CPU per envelope
  --hdr-log FILE  a sealpost-loadgen --hdr-log file:
                    loadgen-max-over-time.png  the largest latency of each interval
  --title TEXT    a line added under every chart's title (machine, date)
  --help          this text
USAGE
}

OUT=. COMPARE="" HDRLOG="" SUB="" REPORTS=()
while [ $# -gt 0 ]; do
	case "$1" in
	--help|-h) usage; exit 0 ;;
	--out) OUT="$2"; shift 2 ;;
	--compare) COMPARE="$2"; shift 2 ;;
	--hdr-log) HDRLOG="$2"; shift 2 ;;
	--title) SUB="$2"; shift 2 ;;
	--*) echo "plot.sh: unknown option '$1' (see --help)" >&2; exit 2 ;;
	*) REPORTS+=("$1"); shift ;;
	esac
done
if [ -z "$COMPARE" ] && [ -z "$HDRLOG" ] && [ ${#REPORTS[@]} -eq 0 ]; then
	usage >&2
	exit 2
fi
for prog in gnuplot python3; do
	command -v "$prog" >/dev/null || { echo "plot.sh: $prog not found (scripts/deps.sh)" >&2; exit 1; }
done
mkdir -p "$OUT"
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT

# Data files for gnuplot, one per chart, from the JSON (python3: the
# reports are JSON, and sed on their layout is what run.sh already does
# for its table; a chart should not depend on line breaks).
python3 - "$TMP" "$COMPARE" "${REPORTS[@]}" <<'PY'
import json, os, sys
tmp, compare, reports = sys.argv[1], sys.argv[2], sys.argv[3:]
def load(p):
    with open(p) as f:
        return json.load(f)
labels = {"sealpost-durable": "sealpost durable", "sealpost": "sealpost online-only",
          "mosquitto": "Mosquitto TLS QoS 1",
          "nats": "NATS TLS core", "natsjs": "NATS TLS JetStream"}
if compare:
    rows = {"latency": [], "capacity": [], "memory": []}
    for kind in ("sealpost-durable", "mosquitto", "natsjs", "sealpost", "nats"):
        lab = '"%s"' % labels[kind]
        p = os.path.join(compare, kind + "-lat.json")
        if os.path.exists(p):
            j = load(p)
            rows["latency"].append("%s %g %g" % (lab, j["latency_us"]["p50"], j["latency_us"]["p99"]))
        p = os.path.join(compare, kind + "-max.json")
        if os.path.exists(p):
            rows["capacity"].append("%s %g" % (lab, load(p)["throughput"]))
        p = os.path.join(compare, kind + "-idle.json")
        if os.path.exists(p):
            rows["memory"].append("%s %g" % (lab, load(p)["broker_mem_per_conn_bytes"]))
    for k, v in rows.items():
        if not v:
            sys.exit("plot.sh: no %s report in %s" % (k, compare))
        with open(os.path.join(tmp, "compare-%s.dat" % k), "w") as f:
            f.write("\n".join(v) + "\n")
if reports:
    with open(os.path.join(tmp, "pct.dat"), "w") as f, open(os.path.join(tmp, "thr.dat"), "w") as g:
        for p in reports:
            j = load(p)
            lab = os.path.basename(p).rsplit(".json", 1)[0]
            l = j["latency_us"]
            f.write('"%s"\n' % lab)
            for i, (name, v) in enumerate((("p50", l["p50"]), ("p90", l["p90"]), ("p99", l["p99"]),
                                           ("p99.9", l["p99_9"]), ("max", l["max"]))):
                f.write('%d "%s" %g\n' % (i, name, v))
            f.write("\n\n")
            win = j["broker_cpu_s"]["window"]
            per = win * 1e6 / j["delivered_window"] if win >= 0 and j["delivered_window"] else 0
            g.write('"%s" %g %g\n' % (lab, j["throughput"], per))
PY

# Common look: one size, a grid, the machine line under the title.
common() { # title, ylabel
	cat <<GP
set terminal pngcairo size 900,520 font "sans,10"
set title "$1${SUB:+\\n{/*0.8 $SUB}}"
set ylabel "$2"
set grid ytics
set key top left
set style fill solid 0.8 border -1
GP
}

if [ -n "$COMPARE" ]; then
	{ common "Pairs latency (open loop, from the intended send time)" "latency (us, log scale)"
	  cat <<GP
set output "$OUT/compare-latency.png"
set logscale y
set style data histograms
set style histogram clustered gap 1
plot "$TMP/compare-latency.dat" using 2:xtic(1) title "p50", "" using 3 title "p99"
GP
	} | gnuplot
	{ common "Capacity: envelopes delivered per second (closed loop, same window for all)" "envelopes/s"
	  cat <<GP
set output "$OUT/compare-capacity.png"
set yrange [0:*]
set boxwidth 0.6
plot "$TMP/compare-capacity.dat" using 0:2:xtic(1) with boxes notitle, \
     "" using 0:2:(sprintf("%.0f", \$2)) with labels offset 0,0.8 notitle
GP
	} | gnuplot
	{ common "Broker memory per idle connection (RSS growth / connections)" "bytes"
	  cat <<GP
set output "$OUT/compare-memory.png"
set yrange [0:*]
set boxwidth 0.6
plot "$TMP/compare-memory.dat" using 0:2:xtic(1) with boxes notitle, \
     "" using 0:2:(sprintf("%.0f", \$2)) with labels offset 0,0.8 notitle
GP
	} | gnuplot
	echo "plot.sh: $OUT/compare-latency.png $OUT/compare-capacity.png $OUT/compare-memory.png"
fi

if [ ${#REPORTS[@]} -gt 0 ]; then
	{ common "sealpost-loadgen: latency percentiles" "latency (us, log scale)"
	  cat <<GP
set output "$OUT/loadgen-percentiles.png"
set logscale y
set xtics ("p50" 0, "p90" 1, "p99" 2, "p99.9" 3, "max" 4)
set xrange [-0.3:4.3]
plot for [i=0:${#REPORTS[@]}-1] "$TMP/pct.dat" index i using 1:3 with linespoints lw 2 title columnheader(1)
GP
	} | gnuplot
	{ common "sealpost-loadgen: throughput and broker CPU per envelope" "envelopes/s delivered"
	  cat <<GP
set output "$OUT/loadgen-throughput.png"
set y2label "broker CPU per envelope (us)"
set y2tics
set ytics nomirror
set yrange [0:*]
set y2range [0:*]
set boxwidth 0.4
plot "$TMP/thr.dat" using (\$0-0.2):2:xtic(1) with boxes title "delivered/s", \
     "" using (\$0+0.2):3 axes x1y2 with boxes title "broker CPU us/envelope"
GP
	} | gnuplot
	echo "plot.sh: $OUT/loadgen-percentiles.png $OUT/loadgen-throughput.png"
fi

if [ -n "$HDRLOG" ]; then
	# Interval lines only: comments, the legend and the base64 column are skipped.
	grep -E '^[0-9]' "$HDRLOG" | cut -d, -f1-3 | tr , ' ' >"$TMP/hdr.dat"
	[ -s "$TMP/hdr.dat" ] || { echo "plot.sh: no intervals in $HDRLOG" >&2; exit 1; }
	{ common "sealpost-loadgen: largest latency per interval (--hdr-log)" "latency (ms, log scale)"
	  cat <<GP
set output "$OUT/loadgen-max-over-time.png"
set xlabel "seconds since the start of traffic"
set logscale y
plot "$TMP/hdr.dat" using (\$1+\$2/2):3 with linespoints lw 2 title "interval max"
GP
	} | gnuplot
	echo "plot.sh: $OUT/loadgen-max-over-time.png"
fi
