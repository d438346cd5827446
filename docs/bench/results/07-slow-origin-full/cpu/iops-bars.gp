set terminal pngcairo size 1000,560 noenhanced
set output 'iops-bars.png'
set title '4K randwrite, 16 jobs x QD4 over 48M, 16M wcache cache'
set style data histograms
set style histogram clustered gap 1
set style fill solid 0.8 border -1
set logscale y
set ylabel 'IOPS (median of rounds, log scale)'
set xtics rotate by -20 font ',9'
set bmargin 7
set grid ytics
set key outside top center horizontal
plot 'iops-bars.dat' using 2:xtic(1) title 'origin', '' using 3 title 'wcache'
