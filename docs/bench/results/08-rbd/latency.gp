set terminal pngcairo size 900,520 noenhanced
set output 'latency.png'
set title '4K random write QD1 latency, Ceph RBD origin (median of 3 rounds)'
set style data histograms
set style histogram clustered gap 1
set style fill solid 0.8 border -1
set logscale y
set ylabel 'microseconds (log scale)'
set grid ytics
set key outside top center horizontal
plot 'latency-bars.dat' using 2:xtic(1) title 'p50', '' using 3 title 'p99'
