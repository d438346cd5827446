set terminal pngcairo size 900,500 noenhanced
set output 'drain.png'
set title 'Drain of 8000 dirty blocks by message flush (delay-write=2ms)'
set xlabel 'seconds since message flush'
set ylabel 'dirty blocks'
set grid
plot 'drain-slow-wj1.dat' using 1:2 with lines dt 1 lw 2 title 'serial, writeback_jobs=1', 'drain-slow-wj16.dat' using 1:2 with lines dt 1 lw 2 title 'serial, writeback_jobs=16', 'drain-slow-wj256.dat' using 1:2 with lines dt 1 lw 2 title 'serial, writeback_jobs=256', 'drain-slow-wj4096.dat' using 1:2 with lines dt 1 lw 2 title 'serial, writeback_jobs=4096', 'drain-slow-wj65536.dat' using 1:2 with lines dt 1 lw 2 title 'serial, writeback_jobs=65536', 'drain-slowpar-wj1.dat' using 1:2 with lines dt 2 lw 2 title 'parallel, writeback_jobs=1', 'drain-slowpar-wj16.dat' using 1:2 with lines dt 2 lw 2 title 'parallel, writeback_jobs=16', 'drain-slowpar-wj256.dat' using 1:2 with lines dt 2 lw 2 title 'parallel, writeback_jobs=256', 'drain-slowpar-wj4096.dat' using 1:2 with lines dt 2 lw 2 title 'parallel, writeback_jobs=4096', 'drain-slowpar-wj65536.dat' using 1:2 with lines dt 2 lw 2 title 'parallel, writeback_jobs=65536'
