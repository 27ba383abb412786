#!/usr/bin/env bash
# One ReLoRA* or SST variant on the HGNN benchmark settings: Airport NC/LP, Cora NC/LP and Disease LP,
# rank 2 (d = 16), 3 seeds, with a given iteration length, warm-up, (SST only) vector learning-rate scale
# and rule ("uniform", the default, or "width"), optimizer-state reset ("moments", the default, or
# "restart"), (SST only) iterations per round ("auto", the default, for ceil(k / r)), and (SST only) the
# learning-rate scale of the singular values (1, the default). These script defaults are the library's
# earlier ones, so the commands documented for older variants reproduce them.
# The validation table of experiments/hgnn_report.py compares the variants found below one folder.
# Usage: experiments/hgnn_variants.sh METHOD PROTOCOL STEPS WARMUP VECTOR_LR_SCALE [VECTOR_LR_RULE [STATE_RESET [ROUND [VALUE_LR_SCALE [OUT_DIR]]]]]
#   e.g. experiments/hgnn_variants.sh sst clean 20 2 1 width restart
set -euo pipefail
usage="usage: hgnn_variants.sh relora|sst clean|hgcn STEPS WARMUP VECTOR_LR_SCALE [uniform|width [moments|restart [auto|ROUND [VALUE_LR_SCALE [OUT_DIR]]]]]"
method=${1:?$usage}
protocol=${2:?$usage}
steps=${3:?$usage}
warmup=${4:?$usage}
scale=${5:?$usage}
rule=${6:-uniform}
reset=${7:-moments}
round=${8:-auto}
values=${9:-1}
# The folder name gives the warm-up only when it is not a tenth of the iteration.
warmup_part=$([ "$warmup" = "$((steps / 10))" ] || echo "-warmup$warmup")
suffix=$([ "$rule" = uniform ] || echo "-$rule")$([ "$reset" = moments ] || echo "-$reset")$([ "$round" = auto ] || echo "-round$round")$([ "$values" = 1 ] || echo "-values$values")
out=${10:-results/hgnn/$protocol/variants/$method-steps$steps$warmup_part-scale$scale$suffix}
data_root=${HYPERSST_DATA:-../shared/data/hgnn}
export OMP_NUM_THREADS=1
options=(--data-root "$data_root" --protocol "$protocol" --method "$method" --rank 2 --seeds 3
    --sst-steps "$steps" --sst-warmup "$warmup" --sst-vector-lr-scale "$scale" --sst-vector-lr-rule "$rule"
    --sst-state-reset "$reset" --sst-value-lr-scale "$values" --no-progress)
[ "$round" = auto ] || options+=(--sst-iterations-per-round "$round")
start=$(date +%s)
hypersst hgnn "${options[@]}" --dataset airport cora --task nc lp --out "$out/airport-cora"
hypersst hgnn "${options[@]}" --dataset disease --task lp --out "$out/disease"
echo "wall time: $(( $(date +%s) - start )) s"
