set terminal pngcairo size 1000,560 noenhanced
set output 'pmem-bars.png'
set title 'pmem mode (p) vs SSD mode (s) on tmpfs, and nbdkit memory (4K unless noted)'
set style data histograms
set style histogram clustered gap 1
set style fill solid 0.8 border -1
set logscale y
set ylabel 'IOPS (median of rounds, log scale)'
set xtics rotate by -20 font ',9'
set bmargin 7
set grid ytics
set key outside top center horizontal
plot 'pmem-bars.dat' using 2:xtic(1) title 'wcache s (ssd)', '' using 3 title 'nbdkit memory', '' using 4 title 'wcache p (pmem)'
