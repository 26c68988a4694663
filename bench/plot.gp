# Mpps processed per system per scenario, clustered bars. Called by bench/report.sh:
#   gnuplot -e "datafile='chart.dat'; outfile='results.png'; charttitle='...'" bench/plot.gp
# datafile: header line, then "scenario<TAB>xdp_drop<TAB>xdp_ban<TAB>xdp_pass<TAB>xdp_tx<TAB>ipt_raw<TAB>iptables<TAB>nft<TAB>hyperion",
# "-" where a system did not run that scenario.
set terminal pngcairo size 1200,600 noenhanced font ",10"
set output outfile
set datafile separator "\t"
set datafile missing "-"
set title charttitle
set ylabel "Mpps"
set style data histograms
set style histogram clustered gap 1
set style fill solid 0.85 border -1
set boxwidth 0.9
set key outside right top vertical
set grid ytics
# log scale: the slowest systems are two orders of magnitude below the ceiling in scenario (e)
set logscale y
set yrange [0.005:*]
plot for [c=2:9] datafile using c:xtic(1) title columnheader(c)
