set terminal pngcairo size 1000,560 noenhanced
set output 'latency-bars.png'
set title 'Write latency, 16 jobs x QD4 4K randwrite over 48M (16M wcache cache)'
set style data histograms
set style histogram clustered gap 1
set style fill solid 0.8 border -1
set logscale y
set ylabel 'ms (median of rounds, log scale)'
set grid ytics
set key outside top center horizontal
plot 'latency-bars.dat' using 2:xtic(1) title 'origin p99', '' using 3 title 'wcache p99',      '' using 4 title 'origin max', '' using 5 title 'wcache max'
