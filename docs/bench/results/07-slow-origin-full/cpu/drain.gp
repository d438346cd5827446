set terminal pngcairo size 900,500 noenhanced
set output 'drain.png'
set title 'Drain of 16384 dirty blocks by message flush (delay-write 2 ms)'
set xlabel 'seconds since message flush'
set ylabel 'dirty blocks'
set grid
plot 'drain-r1.dat' using 1:2 with lines lw 2 title 'round 1', 'drain-r2.dat' using 1:2 with lines lw 2 title 'round 2', 'drain-r3.dat' using 1:2 with lines lw 2 title 'round 3'
