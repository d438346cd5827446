set terminal pngcairo size 1000,800 noenhanced
set output 'timeline.png'
set multiplot layout 2,1 title 'wcache under load, round 1 (wcache status every 0.1 s)'
set grid
set xlabel 'seconds'
set ylabel 'writes/s completed by wcache'
plot 'timeline-d2.dat' using 1:2 with lines lw 2 lc 1 title 'wcache, delay-write 2 ms', 28434.478626 with lines dt 2 lc 1 title 'origin (median IOPS)', 'timeline-d1.dat' using 1:2 with lines lw 2 lc 2 title 'wcache, delay-write 1 ms', 40047.952048 with lines dt 2 lc 2 title 'origin (median IOPS)', 'timeline-file.dat' using 1:2 with lines lw 2 lc 3 title 'wcache, local file, O_DIRECT', 44035.742812 with lines dt 2 lc 3 title 'origin (median IOPS)', 'timeline-d2b.dat' using 1:2 with lines lw 2 lc 4 title 'wcache, delay-write 2 ms, cache-io buffered', 28061.489319 with lines dt 2 lc 4 title 'origin (median IOPS)'
set ylabel 'dirty blocks (of 4080)'
plot 'timeline-d2.dat' using 1:4 with lines lw 2 lc 1 title 'delay-write 2 ms', 'timeline-d1.dat' using 1:4 with lines lw 2 lc 2 title 'delay-write 1 ms', 'timeline-file.dat' using 1:4 with lines lw 2 lc 3 title 'local file, O_DIRECT', 'timeline-d2b.dat' using 1:4 with lines lw 2 lc 4 title 'delay-write 2 ms, cache-io buffered'
unset multiplot
