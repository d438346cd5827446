set terminal pngcairo size 900,500 noenhanced
set output 'tmpfs-bars.png'
set title 'Engine overhead on tmpfs: nbdkit file vs wcache (4K unless noted)'
set style data histograms
set style histogram clustered gap 1
set style fill solid 0.8 border -1
set logscale y
set ylabel 'IOPS (median of rounds, log scale)'
set xtics rotate by -20
set grid ytics
set key top right
plot 'tmpfs-bars.dat' using 2:xtic(1) title 'nbdkit file (raw)', '' using 3 title 'wcache'
