set terminal pngcairo size 1000,800 noenhanced
set output 'cache-full.png'
set multiplot layout 2,1 title 'Sustained 4K random writes, 4x the cache size (128M cache, ext4)'
set grid
set ylabel 'MiB/s (per 500 ms)'
set xlabel 'seconds'
plot 'direct-first.dat' using 1:2 with lines lw 2 title 'nbdkit file (origin, no cache)', 'wcache-50-45.dat' using 1:2 with lines lw 2 title 'wcache 50/45', 'wcache-20-10.dat' using 1:2 with lines lw 2 title 'wcache 20/10', 'wcache-90-85.dat' using 1:2 with lines lw 2 title 'wcache 90/85'
set logscale y
set ylabel 'latency us (p99 solid, p99.9 dashed)'
plot 'direct-first.dat' using 1:5 with lines lw 2 lc 1 title 'file p99', '' using 1:6 with lines dt 2 lc 1 notitle, 'wcache-50-45.dat' using 1:5 with lines lw 2 lc 2 title 'wcache 50/45 p99', '' using 1:6 with lines dt 2 lc 2 notitle, 'wcache-20-10.dat' using 1:5 with lines lw 2 lc 3 title 'wcache 20/10 p99', '' using 1:6 with lines dt 2 lc 3 notitle, 'wcache-90-85.dat' using 1:5 with lines lw 2 lc 4 title 'wcache 90/85 p99', '' using 1:6 with lines dt 2 lc 4 notitle
unset multiplot
