set terminal pngcairo size 1100,900 noenhanced
set output 'before-after.png'
set multiplot layout 2,1 title 'Benchmark 7, wcache / origin, before (12bff93) and after (8e53f18) the async I/O core (issue 13)'
set style data histograms
set style histogram clustered gap 1
set style fill solid 0.8 border -1
set grid ytics
set key outside top center horizontal
set title 'write IOPS, wcache / origin (higher is better; target >= 1.0)'
set yrange [0:1.2]
set arrow 1 from graph 0, first 1.0 to graph 1, first 1.0 nohead dt 2 lw 2 lc rgb 'red'
plot 'before-after.dat' every ::0::2 using 2:xtic(1) title 'before', '' every ::0::2 using 3 title 'after'
unset arrow 1
set title 'latency and drain time, wcache / origin (lower is better; targets: max <= 2.0, drain <= 1.0), log scale'
set logscale y
set yrange [0.1:1000]
set xtics rotate by -20 font ',9'
plot 'before-after.dat' every ::3::9 using 2:xtic(1) title 'before', '' every ::3::9 using 3 title 'after', \
     2.0 with lines dt 2 lw 2 lc rgb 'red' title 'max-latency target 2.0', 1.0 with lines dt 3 lw 2 lc rgb 'dark-red' title 'drain target 1.0'
unset multiplot
