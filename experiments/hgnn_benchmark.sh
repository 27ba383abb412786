#!/usr/bin/env bash
# HGNN benchmark grid: HyboNet with full, LoRA, ReLoRA* and SST at rank 2 (d = 16), 3 seeds, on
# Airport NC/LP, Cora NC/LP and Disease LP, under one split protocol (clean or hgcn).
# Usage: experiments/hgnn_benchmark.sh PROTOCOL [OUT_DIR [FLAG ...]]   (one torch thread; wall time is logged)
# Further flags go to both hypersst commands; --resume continues an interrupted grid in OUT_DIR.
set -euo pipefail
usage="usage: hgnn_benchmark.sh clean|hgcn [OUT_DIR [FLAG ...]] (run from the repository root)"
protocol=${1:?$usage}
case $protocol in
    clean|hgcn) ;;
    *) echo "hgnn_benchmark.sh: unknown protocol '$protocol'; $usage" >&2; exit 2 ;;
esac
shift
# A first extra argument that starts with "-" is a flag, and OUT_DIR keeps its default.
if [ $# -gt 0 ] && [ "${1#-}" = "$1" ]; then
    out=$1
    shift
else
    out=results/hgnn/$protocol
fi
data_root=${HYPERSST_DATA:-../shared/data/hgnn}
export OMP_NUM_THREADS=1
mkdir -p "$out"
start=$(date +%s)
hypersst hgnn --data-root "$data_root" --protocol "$protocol" --grid --rank 2 --seeds 3 \
    --dataset airport cora --task nc lp --out "$out/airport-cora" --no-progress "$@"
hypersst hgnn --data-root "$data_root" --protocol "$protocol" --grid --rank 2 --seeds 3 \
    --dataset disease --task lp --out "$out/disease" --no-progress "$@"
echo "wall time: $(( $(date +%s) - start )) s"
