#!/usr/bin/env bash
# Occupancy sweep at the anchor shapes (device machine; logs under $OUT).
export LD_LIBRARY_PATH=$PWD/.gpu/lib:/usr/local/cuda/lib64:$LD_LIBRARY_PATH TTTC_CACHE_DIR=/tmp/tc
b=.gpu/bin/tttc
{
for n in 1 2 4; do
  $b bench examples/linear.json --shape 16,12,2048 --runs 5 --forward-blocks-per-sm $n --backward-blocks-per-sm $n
  $b bench examples/mlp2.json --shape 16,12,2048 --runs 5 --forward-blocks-per-sm 1 --backward-blocks-per-sm $n
  $b bench examples/video-mlp2-noncausal.json --shape 2,48,4096 --runs 5 --forward-blocks-per-sm $n --backward-blocks-per-sm $n
done
} 2>&1 | tee $OUT/bench.log
